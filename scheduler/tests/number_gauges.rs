//! The gauges of the numbers' throughput and quality and of dispatches paused with a reason
//! (`ezpulze_scheduler::numbers`): aggregates with bounded labels, from real Postgres rows.

use ezpulze_testkit::db::TestDb;
use uuid::Uuid;

#[tokio::test]
async fn numbers_by_throughput_and_flag_and_dispatches_by_pause_reason() {
    let handle = ezpulze_runtime::telemetry::metrics_handle();
    let db = TestDb::new().await.pool;
    let account = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, 'a')")
        .bind(account)
        .execute(&db)
        .await
        .expect("account");
    for (id, mps, level, flagged) in [
        ("1", 80, "STANDARD", false),
        ("2", 80, "STANDARD", true),
        ("3", 1000, "HIGH", false),
    ] {
        sqlx::query(
            "INSERT INTO phone_numbers (phone_number_id, account_id, display_phone_number,
                 access_token_enc, messages_per_second, throughput_level, flagged)
             VALUES ($1, $2, $1, '\\x00', $3, $4, $5)",
        )
        .bind(id)
        .bind(account)
        .bind(mps)
        .bind(level)
        .bind(flagged)
        .execute(&db)
        .await
        .expect("number");
    }
    for (status, reason) in [
        ("paused", Some("number_flagged")),
        ("paused", Some("number_flagged")),
        ("paused", Some("some_new_code")),
        ("paused", None),
        ("sending", None),
    ] {
        sqlx::query(
            "INSERT INTO dispatches (id, account_id, phone_number_id, status, total, pause_reason)
             VALUES ($1, $2, '2', $3, 1, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(account)
        .bind(status)
        .bind(reason)
        .execute(&db)
        .await
        .expect("dispatch");
    }
    ezpulze_scheduler::numbers::gauges(&db)
        .await
        .expect("gauges");
    let text = handle.render();
    for line in [
        "ezpulze_whatsapp_numbers{throughput=\"standard\",flagged=\"false\"} 1",
        "ezpulze_whatsapp_numbers{throughput=\"standard\",flagged=\"true\"} 1",
        "ezpulze_whatsapp_numbers{throughput=\"high\",flagged=\"false\"} 1",
        "ezpulze_whatsapp_numbers{throughput=\"high\",flagged=\"true\"} 0",
        "ezpulze_whatsapp_numbers_rate_sum 1160",
        "ezpulze_dispatches_paused{reason=\"number_flagged\"} 2",
        "ezpulze_dispatches_paused{reason=\"template_paused\"} 0",
        "ezpulze_dispatches_paused{reason=\"other\"} 1",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}
