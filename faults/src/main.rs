//! `ezpulze-faults [--long] [--only <scenario>]`: runs the fault suite and prints its report.

use std::path::PathBuf;

use anyhow::Context;
use ezpulze_faults::report;
use ezpulze_faults::scenarios::{Fault, Size, Suite};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "ezpulze-faults [--long] [--only <scenario>]\nscenarios: {}",
            Fault::ALL.map(|f| f.name()).join(", ")
        );
        return Ok(());
    }
    let size = if args.iter().any(|a| a == "--long") {
        Size::LONG
    } else {
        Size::SMALL
    };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let exe = std::env::current_exe().context("locating the binaries")?;
    let bin_dir = exe.parent().context("binary directory")?.to_path_buf();
    let out_dir =
        PathBuf::from(std::env::var("FAULTS_OUT").unwrap_or_else(|_| "tests-output/faults".into()));
    std::fs::create_dir_all(&out_dir)?;
    let root = std::env::temp_dir().join(format!("ezpulze-faults-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let mut suite = Suite::start(&root, bin_dir, out_dir.clone(), size)?;
    println!("fault suite: {size:?}");
    println!("{}", report::header());
    let mut all = Vec::new();
    let mut failed = false;
    for fault in Fault::ALL {
        if only.as_deref().is_some_and(|o| o != fault.name()) {
            continue;
        }
        let outcome = match suite.run(fault).await {
            Ok(o) => o,
            Err(e) => {
                let mut o = ezpulze_faults::scenarios::Outcome {
                    scenario: fault.name(),
                    ..Default::default()
                };
                o.problems.push(format!("{e:#}"));
                o
            }
        };
        failed |= !outcome.problems.is_empty();
        println!("{}", report::line(&outcome));
        all.push(report::json(&outcome));
    }
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_vec_pretty(&all)?,
    )?;
    println!(
        "logs and report.json in {} (Postgres log: {})",
        out_dir.display(),
        suite.pg.log_path().display()
    );
    drop(suite);
    let _ = std::fs::remove_dir_all(&root);
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
