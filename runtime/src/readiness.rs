//! Readiness, one rule for every role (api, worker, scheduler): each dependency is asked
//! once, all at the same time, and each within its own [`CHECK_TIMEOUT`]. An outage or a
//! stalled server is reported as soon as that timeout passes, naming the dependency, instead
//! of after the Postgres pool's own acquire timeout (5 s) or a Redis command that never
//! returns. `ezpulze_readyz_failures_total{dependency, cause}` counts the failed checks.

use std::time::Duration;

use ezpulze_common::redis_conn::RedisConn;
use sqlx::PgPool;

/// How long one dependency may take to answer a readiness check.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// What one dependency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// It answered with an error (refused, closed, an error reply).
    Failed,
    /// It did not answer within the check's timeout.
    TimedOut,
}

impl Check {
    pub fn is_ok(self) -> bool {
        self == Check::Ok
    }

    fn cause(self) -> &'static str {
        match self {
            Check::Ok => "ok",
            Check::Failed => "error",
            Check::TimedOut => "timeout",
        }
    }
}

/// The answers of a process's dependencies; `redis` is `None` when it is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub postgres: Check,
    pub redis: Option<Check>,
    /// The timeout each check had.
    pub timeout: Duration,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.postgres.is_ok() && self.redis.is_none_or(Check::is_ok)
    }

    /// `(dependency, what went wrong)` of each failed check, e.g.
    /// `("postgres", "did not answer within 500 ms")`.
    pub fn failures(&self) -> Vec<(&'static str, String)> {
        [("postgres", Some(self.postgres)), ("redis", self.redis)]
            .into_iter()
            .filter_map(|(name, c)| match c? {
                Check::Ok => None,
                Check::Failed => Some((name, "unreachable".to_owned())),
                Check::TimedOut => Some((
                    name,
                    format!("did not answer within {} ms", self.timeout.as_millis()),
                )),
            })
            .collect()
    }

    /// `ready`, or each failure as `<dependency> <what>` separated by `; `.
    pub fn summary(&self) -> String {
        if self.is_ready() {
            return "ready".to_owned();
        }
        self.failures()
            .into_iter()
            .map(|(name, what)| format!("{name} {what}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs `f` within `timeout`: its answer, or [`Check::TimedOut`].
async fn within<F>(timeout: Duration, dependency: &'static str, f: F) -> Check
where
    F: std::future::Future<Output = bool>,
{
    let check = match tokio::time::timeout(timeout, f).await {
        Ok(true) => Check::Ok,
        Ok(false) => Check::Failed,
        Err(_) => Check::TimedOut,
    };
    if !check.is_ok() {
        metrics::counter!("ezpulze_readyz_failures_total", "dependency" => dependency, "cause" => check.cause())
            .increment(1);
    }
    check
}

/// Asks Postgres (`SELECT 1`) and, when given, Redis (`PING`; on a cluster, a key's slot) at
/// the same time, each within `timeout`.
pub async fn check(db: &PgPool, redis: Option<&RedisConn>, timeout: Duration) -> Readiness {
    let pg = within(timeout, "postgres", async {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(db)
            .await
            .is_ok()
    });
    let rd = async {
        match redis {
            None => None,
            Some(conn) => {
                let mut conn = conn.clone();
                Some(
                    within(timeout, "redis", async move {
                        if conn.is_cluster() {
                            // A cluster client sends PING to every node, a dead one included
                            // (until it is forgotten): a key's slot answers instead.
                            redis::cmd("EXISTS")
                                .arg("{ezpulze}:readyz")
                                .query_async::<i64>(&mut conn)
                                .await
                                .is_ok()
                        } else {
                            redis::cmd("PING")
                                .query_async::<String>(&mut conn)
                                .await
                                .is_ok()
                        }
                    })
                    .await,
                )
            }
        }
    };
    let (postgres, redis) = tokio::join!(pg, rd);
    Readiness {
        postgres,
        redis,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_each_failing_dependency() {
        let r = |postgres, redis| Readiness {
            postgres,
            redis,
            timeout: CHECK_TIMEOUT,
        };
        assert_eq!(r(Check::Ok, None).summary(), "ready");
        assert_eq!(r(Check::Ok, Some(Check::Ok)).summary(), "ready");
        assert_eq!(
            r(Check::TimedOut, Some(Check::Ok)).summary(),
            "postgres did not answer within 500 ms"
        );
        let both = r(Check::Failed, Some(Check::TimedOut));
        assert!(!both.is_ready());
        assert_eq!(
            both.summary(),
            "postgres unreachable; redis did not answer within 500 ms"
        );
    }
}
