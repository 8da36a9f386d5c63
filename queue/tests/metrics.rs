//! The `ezpulze_queue_*` counters and gauges are recorded (a debugging recorder is installed
//! for this test binary).
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ezpulze_queue::metrics::names;
use ezpulze_queue::JobError;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_gauges_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the debugging recorder");

    let ns = ns("metrics");
    let q = queue(&ns, cfg(&ns).with_max_attempts(1)).await;
    q.push_bulk(&jobs(0..10)).await.expect("push");
    q.push_delayed(&jobs(10..12), Duration::from_secs(60))
        .await
        .expect("push delayed");
    let mut c = q.consumer("m");
    let mut got = Vec::new();
    while got.len() < 10 {
        got.extend(c.fetch_batch(10).await.expect("fetch"));
    }
    let results = got.into_iter().map(|j| {
        let r = match j.payload.n {
            0 => Err(JobError::permanent("no")),
            _ => Ok(()),
        };
        (j.meta, r)
    });
    q.complete(results).await.expect("complete");
    let s = q.report_metrics().await.expect("stats");
    assert_eq!((s.depth, s.delayed, s.in_flight, s.dead), (0, 2, 0, 1));

    let mut values: HashMap<String, f64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        if !k.labels().any(|l| l.key() == "queue" && l.value() == "q") {
            continue;
        }
        let v = match value {
            DebugValue::Counter(c) => c as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(_) => continue,
        };
        values.insert(k.name().to_owned(), v);
    }
    assert_eq!(values.get(names::PUSHED), Some(&12.0), "{values:?}");
    assert_eq!(values.get(names::ACKED), Some(&9.0), "{values:?}");
    assert_eq!(values.get(names::DEAD_TOTAL), Some(&1.0), "{values:?}");
    assert_eq!(values.get(names::DELAYED), Some(&2.0), "{values:?}");
    assert_eq!(values.get(names::DEAD), Some(&1.0), "{values:?}");
    assert_eq!(values.get(names::DEPTH), Some(&0.0), "{values:?}");
    assert_eq!(values.get(names::IN_FLIGHT), Some(&0.0), "{values:?}");
    assert!(values.contains_key(names::OLDEST_AGE));
    q.purge().await.expect("purge");
}
