//! A slow statement is logged as one short line (its name and duration), never with its SQL.
//! The subscriber is the processes' own (`telemetry::subscriber`), installed as the global
//! default: nextest runs each test in its own process.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use ezpulze_common::config::{Config, LogFormat};
use tracing::Instrument;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn a_slow_statement_logs_its_name_and_duration_not_its_sql() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(ezpulze_runtime::telemetry::subscriber(
        LogFormat::Text,
        capture.clone(),
        false,
    ))
    .expect("the only subscriber of this process");

    let pg = std::env::var("EZPULZE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let config = Config::from_source(&HashMap::from([
        ("DATABASE_URL".to_owned(), pg),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "2".to_owned()),
    ]))
    .expect("config");
    let db = ezpulze_common::db::connect(&config).await.expect("pg");

    // A long statement (about 4 KB, like the worker's batched ones) slower than the threshold.
    let padding = (0..400)
        .map(|i| format!("{i} AS padding_column_{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT pg_sleep(0.6), {padding}");
    assert!(sql.len() > 4000);
    sqlx::query(&sql)
        .execute(&db)
        .instrument(tracing::info_span!("claim_batch"))
        .await
        .expect("query");

    let out = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("slow statement"))
        .collect();
    assert_eq!(lines.len(), 1, "one slow-statement line: {out}");
    let line = lines[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("statement=SELECT pg_sleep(0.6), 0 AS"),
        "{line}"
    );
    let ms: u64 = line
        .split("elapsed_ms=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("elapsed_ms=<integer>");
    assert!((600..10_000).contains(&ms), "{line}");
    assert!(line.contains("operation=claim_batch"), "{line}");
    assert!(
        !line.contains("padding_column_1 "),
        "no SQL beyond the name: {line}"
    );
    assert!(
        line.len() < 400,
        "a short line ({} bytes): {line}",
        line.len()
    );
    assert!(
        !out.contains("padding_column_399"),
        "the SQL is never printed: {out}"
    );
}
