//! The environment map of a test process (what `Config::from_source` reads).

use std::collections::HashMap;

/// The root token of every test (authorises `POST /admin/v1/accounts`).
pub const ROOT: &str = "test-root-token-0123456789";

/// A builder of the settings map; [`settings()`] starts with what every harness needs.
#[derive(Debug, Clone)]
pub struct Settings {
    map: HashMap<String, String>,
}

/// The settings every test process shares: the test Redis, a small pool, the root token,
/// quick `last_used_at` flushes and port 0 for every listener. Database and prefix come
/// from [`Settings::database_url`] and [`Settings::redis_prefix`] (or a `TestDb`/`TestRedis`).
pub fn settings() -> Settings {
    let mut map = HashMap::new();
    for (k, v) in [
        ("DATABASE_MAX_CONNECTIONS", "4"),
        ("EZPULZE_ROOT_TOKEN", ROOT),
        ("LAST_USED_FLUSH_MS", "100"),
        ("API_ADDR", "127.0.0.1:0"),
        ("WORKER_METRICS_ADDR", "127.0.0.1:0"),
        ("SCHEDULER_METRICS_ADDR", "127.0.0.1:0"),
    ] {
        map.insert(k.to_owned(), v.to_owned());
    }
    map.insert("REDIS_URL".to_owned(), crate::redis_url());
    Settings { map }
}

impl Settings {
    /// Sets one variable.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.map.insert(key.to_owned(), value.into());
        self
    }

    /// Sets several variables (later ones win).
    pub fn extend(mut self, extra: &[(&str, &str)]) -> Self {
        for (k, v) in extra {
            self.map.insert((*k).to_owned(), (*v).to_owned());
        }
        self
    }

    pub fn database_url(self, url: &str) -> Self {
        self.set("DATABASE_URL", url)
    }

    pub fn redis_prefix(self, prefix: &str) -> Self {
        self.set("REDIS_PREFIX", prefix)
    }

    /// A variable's value, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn map(&self) -> &HashMap<String, String> {
        &self.map
    }

    pub fn into_map(self) -> HashMap<String, String> {
        self.map
    }

    /// The typed configuration of these settings.
    #[cfg(feature = "db")]
    pub fn config(&self) -> ezpulze_common::Config {
        ezpulze_common::Config::from_source(&self.map).expect("test settings form a valid config")
    }
}
