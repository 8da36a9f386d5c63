//! Logging and metrics set-up shared by every process.

use std::fmt::Write as _;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer};

use ezpulze_common::config::LogFormat;

/// Installs the tracing subscriber once (later calls are no-ops, as in tests).
/// Colours only on a terminal: `make up` writes each role's log to a file.
pub fn init_tracing(format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = subscriber(format, std::io::stderr, ansi).try_init();
}

/// The subscriber of [`init_tracing`], writing to `writer` (tests capture it), in colour
/// when `ansi`.
///
/// sqlx's slow-statement event carries the statement's whole SQL (some are 4 KB, and under
/// load one is logged every second or so); it is never printed. [`SlowStatements`] logs one
/// short line in its place: the statement's first words and a digest, its duration, its rows
/// and the operation (span) that ran it.
pub fn subscriber<W>(format: LogFormat, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(env)
        .with(fmt.with_filter(filter::filter_fn(|m| !is_sqlx_slow_statement(m))))
        .with(SlowStatements)
}

/// sqlx logs a statement under `sqlx::query`: at debug level normally (`log_statements`), at
/// warn when it ran longer than the slow threshold (`log_slow_statements`, common/src/db.rs).
fn is_sqlx_slow_statement(meta: &Metadata<'_>) -> bool {
    meta.target() == "sqlx::query" && *meta.level() <= Level::WARN
}

/// Turns sqlx's slow-statement events into a short `slow statement` warning (target
/// `ezpulze::db`): `statement` (first words and digest, see [`statement_name`]), `elapsed_ms`,
/// `rows_affected`, `rows_returned`, `operation` (the enclosing spans, outermost first).
pub struct SlowStatements;

impl<S> Layer<S> for SlowStatements
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !is_sqlx_slow_statement(event.metadata()) {
            return;
        }
        let mut fields = SqlxFields::default();
        event.record(&mut fields);
        let sql = if fields.statement.trim().is_empty() {
            &fields.summary
        } else {
            &fields.statement
        };
        let operation = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| span.name())
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        tracing::warn!(
            target: "ezpulze::db",
            statement = %statement_name(sql),
            elapsed_ms = (fields.elapsed_secs * 1000.0).round() as u64,
            rows_affected = fields.rows_affected,
            rows_returned = fields.rows_returned,
            operation = %if operation.is_empty() { "-" } else { &operation },
            "slow statement"
        );
    }
}

#[derive(Default)]
struct SqlxFields {
    summary: String,
    statement: String,
    elapsed_secs: f64,
    rows_affected: u64,
    rows_returned: u64,
}

impl Visit for SqlxFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "rows_affected" => self.rows_affected = value,
            "rows_returned" => self.rows_returned = value,
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.record_str(field, &format!("{value:?}"));
        }
    }
}

/// Words of a statement shown in its log name.
const NAME_WORDS: usize = 6;
/// Characters of a statement shown in its log name, at most.
const NAME_CHARS: usize = 60;

/// A short, stable name of an SQL statement for logs: its first words (comments dropped,
/// whitespace collapsed, at most [`NAME_WORDS`] words and [`NAME_CHARS`] characters), then
/// `#` and an 8-hex-digit FNV-1a digest of the whole normalised statement, so two statements
/// that start alike stay apart. Bind values are never part of the SQL, so none is shown.
pub fn statement_name(sql: &str) -> String {
    let normalised = normalise_sql(sql);
    let mut name = String::new();
    for word in normalised.split(' ').take(NAME_WORDS) {
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(word);
    }
    if name.chars().count() > NAME_CHARS {
        name = name.chars().take(NAME_CHARS).collect();
    }
    if name.len() < normalised.len() {
        name.push('…');
    }
    let digest = normalised.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let _ = write!(name, " #{digest:08x}");
    name
}

/// The statement without `--` and `/* */` comments, on one line, words separated by one space.
fn normalise_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                space = true;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                space = true;
            }
            c if c.is_whitespace() => space = true,
            c => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets in seconds, from 100 us to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the Prometheus recorder once per process and returns its handle for `/metrics`.
/// Histograms ending in `_seconds` get real buckets.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): render an empty registry.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// This process's CPU time so far in seconds (user + system, from `/proc/self/stat`; `None`
/// where that cannot be read). For benchmarks that report CPU per unit of work.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, and it may hold spaces) the fields start at the
    // state (field 3): utime is field 14 and stime field 15, in USER_HZ (100 on Linux).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_statement_gets_a_short_name_with_a_digest() {
        let long = format!(
            "-- claim a batch\nWITH claimed AS (\n  SELECT id FROM messages\n  WHERE status = 'queued' {}\n)",
            "AND true ".repeat(500)
        );
        let name = statement_name(&long);
        assert!(name.starts_with("WITH claimed AS ( SELECT id…"), "{name}");
        assert!(name.chars().count() <= NAME_CHARS + 11, "{name}");
        assert!(
            !name.contains("claim a batch"),
            "comments are dropped: {name}"
        );
        // The same statement written differently has the same name; another one does not.
        let spaced = long.replace("  ", " \t ");
        assert_eq!(statement_name(&spaced), name);
        let other = long.replace("'queued'", "'sending'");
        assert_ne!(statement_name(&other), name);
    }

    #[test]
    fn a_short_statement_is_shown_whole() {
        let name = statement_name("SELECT 1");
        assert!(name.starts_with("SELECT 1 #"), "{name}");
        assert!(!name.contains('…'));
        let long_word = "x".repeat(200);
        assert!(statement_name(&long_word).chars().count() <= NAME_CHARS + 11);
    }

    #[test]
    fn process_cpu_seconds_reads_this_process_and_grows_with_work() {
        let before = process_cpu_seconds().expect("/proc/self/stat");
        // Spin until the count moves (a tick is 10 ms of CPU); bounded in wall time.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after <= before && start.elapsed() < std::time::Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = process_cpu_seconds().expect("/proc/self/stat");
        }
        assert!(after > before, "{before} -> {after}");
    }
}
