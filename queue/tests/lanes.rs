//! Lanes on the real Redis: slots taken where the lane is read, fairness between groups,
//! priority with a bulk share, leases, delays, the registry and purges.
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use ezpulze_queue::{DueLane, LaneItem, Lanes, LanesConfig, RedisTarget, TakeLimits};

async fn lanes(test: &str, lease: Duration) -> Lanes {
    let mut cfg = LanesConfig::new(ns(test), "send");
    cfg.lease = lease;
    Lanes::connect(RedisTarget::single(redis_url()), cfg)
        .await
        .expect("connect lanes")
}

fn items(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn free(max: usize) -> TakeLimits {
    TakeLimits {
        interval: Duration::from_micros(1),
        max,
        horizon: Duration::from_secs(1),
        bulk_every: 5,
    }
}

fn by_group(items: &[LaneItem]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i.group().to_owned()).or_default() += 1;
    }
    m
}

async fn due_now(l: &Lanes) -> Vec<DueLane> {
    let mut all = Vec::new();
    for s in 0..l.shards() {
        all.extend(l.due(s, 100).await.expect("due").0);
    }
    all
}

#[tokio::test]
async fn a_lane_gives_only_its_free_slots_and_says_when_to_come_back() {
    let l = lanes("lane_rate", Duration::from_secs(30)).await;
    l.push("n1", "d1", false, &items("m", 100))
        .await
        .expect("push");
    // 10/s within a 1 s horizon: the slots now, +100 ms, ..., +1 s.
    let limits = TakeLimits {
        interval: Duration::from_millis(100),
        max: 1000,
        horizon: Duration::from_secs(1),
        bulk_every: 5,
    };
    let t = l.take("n1", limits).await.expect("take");
    assert_eq!(t.items.len(), 11);
    assert!(t.first < Duration::from_millis(5), "{:?}", t.first);
    let wake = t.wake.expect("work left");
    assert!(
        wake > Duration::from_millis(400) && wake <= Duration::from_millis(700),
        "{wake:?}"
    );
    // Read again at once: no slot, nothing taken (nothing fetched to be handed back).
    let again = l.take("n1", limits).await.expect("take");
    assert!(again.items.is_empty());
    assert_eq!(l.lane_stats("n1").await.expect("stats"), (89, 0, 11));
}

#[tokio::test]
async fn groups_of_a_lane_share_it_in_turn_and_high_priority_leaves_bulk_its_share() {
    let l = lanes("lane_fair", Duration::from_secs(30)).await;
    l.push("n1", "big", false, &items("b", 1000))
        .await
        .expect("push");
    l.push("n1", "small", false, &items("s", 10))
        .await
        .expect("push");
    let t = l.take("n1", free(20)).await.expect("take");
    let g = by_group(&t.items);
    assert_eq!((g["big"], g["small"]), (10, 10), "{g:?}");
    // A high-priority group: 4 of every 5 picks, bulk keeps one in five.
    l.push("n1", "otp", true, &items("o", 100))
        .await
        .expect("push");
    let t = l.take("n1", free(50)).await.expect("take");
    let g = by_group(&t.items);
    assert_eq!(g["otp"], 40, "{g:?}");
    assert_eq!(g.get("big").copied().unwrap_or(0), 10, "{g:?}");
    // Order within a group is kept.
    let otp: Vec<&str> = t
        .items
        .iter()
        .filter(|i| i.group() == "otp")
        .map(LaneItem::item)
        .take(3)
        .collect();
    assert_eq!(otp, ["o0", "o1", "o2"]);
    // Once high priority is empty, bulk gets every pick.
    let t = l.take("n1", free(200)).await.expect("take");
    let g = by_group(&t.items);
    assert_eq!(g["otp"], 60, "{g:?}");
    assert_eq!(g["big"], 140, "{g:?}");
}

#[tokio::test]
async fn leases_end_delays_come_back_and_counts_stay_exact() {
    let l = lanes("lane_lease", Duration::from_millis(300)).await;
    l.push("n1", "d1", false, &items("m", 3))
        .await
        .expect("push");
    // The same item pushed again (an outbox re-push): the copies merge once taken.
    l.push("n1", "d1", false, &["m0".to_owned()])
        .await
        .expect("push dup");
    assert_eq!(l.counts("n1", &["d1"]).await.expect("counts"), [4]);
    let t = l.take("n1", free(10)).await.expect("take");
    assert_eq!(t.items.len(), 4);
    assert_eq!(l.counts("n1", &["d1"]).await.expect("counts"), [3]);
    assert_eq!(l.lane_stats("n1").await.expect("stats"), (0, 0, 3));
    // m0 acked, m1 later, m2 never settled (its reader died).
    let m0 = t.items.iter().find(|i| i.item() == "m0").expect("m0");
    let m1 = t.items.iter().find(|i| i.item() == "m1").expect("m1");
    l.settle("n1", &[m0], &[(m1, Duration::from_millis(600))])
        .await
        .expect("settle");
    assert_eq!(l.counts("n1", &["d1"]).await.expect("counts"), [2]);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let t = l.take("n1", free(10)).await.expect("take");
    let got: Vec<&str> = t.items.iter().map(LaneItem::item).collect();
    assert_eq!(got, ["m2"], "the lease of m2 ended; m1 is not due yet");
    // Settling the stale copy of m2 after it was taken again changes nothing twice.
    l.settle("n1", &[&t.items[0], &t.items[0]], &[])
        .await
        .expect("settle");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = l.take("n1", free(10)).await.expect("take");
    let got: Vec<&str> = t.items.iter().map(LaneItem::item).collect();
    assert_eq!(got, ["m1"]);
    l.settle("n1", &[&t.items[0]], &[]).await.expect("settle");
    assert_eq!(l.counts("n1", &["d1"]).await.expect("counts"), [0]);
    assert_eq!(l.lane_stats("n1").await.expect("stats"), (0, 0, 0));
}

#[tokio::test]
async fn the_registry_lists_lanes_with_work_and_forgets_empty_ones_unless_pushed_meanwhile() {
    let l = lanes("lane_registry", Duration::from_secs(30)).await;
    for n in ["a", "b", "c"] {
        l.push(n, "d", false, &items("m", 2)).await.expect("push");
    }
    let due = due_now(&l).await;
    let mut names: Vec<&str> = due.iter().map(|d| d.lane.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"]);
    for d in &due {
        let t = l.take(&d.lane, free(10)).await.expect("take");
        assert_eq!(t.items.len(), 2);
        let refs: Vec<&LaneItem> = t.items.iter().collect();
        l.settle(&d.lane, &refs, &[]).await.expect("settle");
        let t = l.take(&d.lane, free(10)).await.expect("take");
        assert_eq!(t.wake, None, "lane {} holds nothing", d.lane);
        if d.lane == "b" {
            // A push after the reader saw it empty: the lane must stay registered.
            l.push("b", "d", false, &items("x", 1)).await.expect("push");
        }
        l.revisit(d, t.wake).await.expect("revisit");
    }
    assert_eq!(l.registered().await.expect("registered"), ["b"]);
    let s = l.stats().await.expect("stats");
    assert_eq!((s.lanes, s.ready), (1, 1));
}

#[tokio::test]
async fn a_capped_lane_is_not_due_until_its_slots_free_up() {
    let l = lanes("lane_wake", Duration::from_secs(30)).await;
    l.push("slow", "d", false, &items("m", 50))
        .await
        .expect("push");
    let limits = TakeLimits {
        interval: Duration::from_millis(200),
        max: 1000,
        horizon: Duration::from_millis(400),
        bulk_every: 5,
    };
    let due = due_now(&l).await;
    assert_eq!(due.len(), 1);
    let t = l.take("slow", limits).await.expect("take");
    assert_eq!(t.items.len(), 3);
    l.revisit(&due[0], t.wake).await.expect("revisit");
    assert!(due_now(&l).await.is_empty(), "not due before its slots");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(due_now(&l).await.len(), 1);
}

#[tokio::test]
async fn a_purge_removes_one_group_and_leaves_the_others() {
    let l = lanes("lane_purge", Duration::from_secs(30)).await;
    l.push("n1", "gone", false, &items("g", 500))
        .await
        .expect("push");
    l.push("n1", "kept", false, &items("k", 5))
        .await
        .expect("push");
    let t = l.take("n1", free(4)).await.expect("take");
    let later: Vec<(&LaneItem, Duration)> = t
        .items
        .iter()
        .filter(|i| i.group() == "gone")
        .map(|i| (i, Duration::from_secs(60)))
        .collect();
    let done: Vec<&LaneItem> = t.items.iter().filter(|i| i.group() == "kept").collect();
    l.settle("n1", &done, &later).await.expect("settle");
    assert_eq!(l.purge("n1", "gone").await.expect("purge"), 500);
    assert_eq!(
        l.counts("n1", &["gone", "kept"]).await.expect("counts"),
        [0, 3]
    );
    let t = l.take("n1", free(100)).await.expect("take");
    assert!(t.items.iter().all(|i| i.group() == "kept"));
    assert_eq!(t.items.len(), 3);
}
