//! The binary: `--help` and configuration from the environment.

use std::process::Command;

use serde_json::Value;

#[test]
fn help_and_env_configuration() {
    let bin = env!("CARGO_BIN_EXE_ezpulze-simulator");
    let help = Command::new(bin)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("SIM_LISTEN") && text.contains("SIM_CONFIG_FILE"),
        "{text}"
    );

    let out = Command::new(bin)
        .arg("--print-config")
        .env("SIM_NUMBERS", "111:15550001111:tok1,222:15550002222:tok2")
        .env("SIM_MPS_LIMIT", "1000")
        .env("SIM_PAIR_GAP_MS", "0")
        .env("SIM_WEBHOOK_URL", "http://127.0.0.1:8080/webhooks/whatsapp")
        .env("SIM_APP_SECRET", "s3cret")
        .env("SIM_ERROR_RATES", r#"{"5xx": 0.01, "131026": 0.02}"#)
        .env(
            "SIM_TEMPLATES",
            r#"[{"name": "promo", "language": "en_US", "body_params": 2}]"#,
        )
        .output()
        .expect("run --print-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: Value = serde_json::from_slice(&out.stdout).expect("config json");
    assert_eq!(cfg["numbers"][1]["phone_number_id"], "222");
    assert_eq!(cfg["numbers"][1]["access_token"], "tok2");
    assert_eq!(cfg["mps_limit"], 1000);
    assert_eq!(cfg["pair_gap_ms"], 0);
    assert_eq!(
        cfg["webhook_url"],
        "http://127.0.0.1:8080/webhooks/whatsapp"
    );
    assert_eq!(cfg["app_secret"], "s3cret");
    assert_eq!(cfg["error_rates"]["131026"], 0.02);
    assert_eq!(cfg["templates"][0]["body_params"], 2);

    let bad = Command::new(bin)
        .arg("--print-config")
        .env("SIM_READ_RATE", "7")
        .output()
        .expect("run");
    assert!(!bad.status.success());
}
