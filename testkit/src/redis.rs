//! A Redis prefix of one test on the shared test Redis.

/// A unique prefix `ezp_t_<16 hex>` on `EZPULZE_TEST_REDIS`, with a connection.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
    pub conn: redis::aio::MultiplexedConnection,
}

impl TestRedis {
    pub async fn new() -> TestRedis {
        let url = crate::redis_url();
        let client = redis::Client::open(url.as_str()).expect("test Redis URL");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis");
        TestRedis {
            url,
            prefix: crate::unique_name(),
            conn,
        }
    }

    /// The stream key of one of this prefix's queues (`{<prefix>:<queue>}:stream`).
    pub fn stream(&self, queue: &str) -> String {
        format!("{{{}:{queue}}}:stream", self.prefix)
    }

    /// The settings of a process on this prefix.
    pub fn settings(&self) -> crate::Settings {
        crate::settings()
            .set("REDIS_URL", self.url.as_str())
            .redis_prefix(&self.prefix)
    }
}
