//! `nanum compare` end to end on MariaDB, kept small (the team shape, one round, three
//! strategies): it must exit cleanly, the safe strategies must show no violation, `none`'s
//! row must report exactly what its check found, and every chart must be an SVG that
//! parses and names every strategy that ran.

use std::{path::Path, process::Command};

use sea_orm::ConnectionTrait;
use serde_json::Value;
use strategies::contract;

const STRATEGIES: [&str; 3] = ["none", "pessimistic-lock", "db-atomic"];

/// Whether MariaDB answers (skipping, or failing under CI, like every MariaDB test); the
/// database made to find out is dropped again — compare makes its own.
async fn mariadb_present() -> bool {
    let Some(url) = contract::fresh_mariadb_url("compare_probe").await else { return false };
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let db = contract::connect(&url, 1).await.expect("connect to the probe database");
    db.execute_unprepared(&format!("DROP DATABASE `{name}`")).await.expect("drop the probe database");
    let _ = db.close().await;
    true
}

fn texts(svg: &Path) -> String {
    let content = std::fs::read_to_string(svg).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
    let doc =
        roxmltree::Document::parse(&content).unwrap_or_else(|e| panic!("{} is not XML: {e}", svg.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{}", svg.display());
    doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect::<Vec<_>>().join("\n")
}

// Long on purpose: one scenario told top to bottom (set up, act, check), as a reader of
// the test expects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_writes_the_table_the_json_and_charts_that_name_every_strategy() {
    if !mariadb_present().await {
        return;
    }
    let out = std::env::temp_dir().join(format!("nanum-compare-test-{}", uuid::Uuid::new_v4().simple()));
    let output = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_nanum"))
                .args(["compare", "--shapes", "team", "--rounds", "1", "--strategies", &STRATEGIES.join(",")])
                .arg("--database-url")
                .arg(contract::test_mysql_url())
                .args(["--redis-url", "", "--kafka-brokers", ""])
                .arg("--out")
                .arg(&out)
                // cheap argon2 for the spawned servers' admin (debug build)
                .env("APP_ENV", "test")
                .env("APP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
                .env("RUST_LOG", "warn")
                .output()
                .expect("run nanum compare")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nanum compare failed:\n{stdout}\n{stderr}");
    println!("{stdout}");

    let folder = std::fs::read_dir(&out).unwrap().next().expect("a report folder").unwrap().path();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("results.json")).unwrap()).unwrap();
    let rows = results["rows"].as_array().unwrap();
    assert_eq!(rows.len(), STRATEGIES.len(), "{results:#}");
    for row in rows {
        let check = &row["check"];
        assert_eq!(row["median"]["requests"], 100);
        if row["safe"] == true {
            assert_eq!(row["violations"], serde_json::json!({}), "{row:#}");
            assert_eq!(check["winners"], 10);
            assert_eq!(check["distinct_winners"], 10);
            assert_eq!(row["median"]["statuses"]["201"], 10);
        } else {
            assert_eq!(row["strategy"], "none");
            // whatever `none` did this time, the row says exactly that
            let over = check["winners"].as_i64().unwrap() - 10;
            assert_eq!(row["violations"]["over-allocated"].as_i64().unwrap_or(0), over.max(0), "{row:#}");
        }
    }
    assert_eq!(results["limits"].as_array().unwrap().len(), 2, "HTTP ceiling and hot-row SQL");
    assert!(results["limits"][1]["median"]["wins"] == 10, "the SQL loop allocates exactly the copies");
    // the strategies needing Redis and Kafka are named as skipped, with the setting
    let skipped = results["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(skipped.iter().all(|s| s["reason"].as_str().unwrap().contains("set ")), "{skipped:?}");

    let report = std::fs::read_to_string(folder.join("report.md")).unwrap();
    // the command line names the program, not the path of this machine's build
    assert!(report.contains("`nanum compare --shapes team "), "{}", report.lines().nth(2).unwrap_or(""));
    for strategy in STRATEGIES {
        assert!(stdout.contains(&format!("`{strategy}`")), "the table names {strategy}");
        assert!(report.contains(&format!("`{strategy}`")), "report.md names {strategy}");
    }
    for chart in ["throughput.svg", "latency.svg", "fraction.svg"] {
        let text = texts(&folder.join(chart));
        for strategy in STRATEGIES {
            assert!(text.lines().any(|l| l.trim() == strategy), "{chart} does not name {strategy}:\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `--preset team`: kafka-redis-lock over 2 API + 2 worker processes at 2, 3, 5 and 7
/// partitions (a fresh topic each), printed beside the team's published averages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_preset_prints_each_partition_count_beside_the_team_figures() {
    if !mariadb_present().await
        || contract::test_redis().await.is_none()
        || contract::test_kafka("team-probe").await.is_none()
    {
        return;
    }
    let out = std::env::temp_dir().join(format!("nanum-team-test-{}", uuid::Uuid::new_v4().simple()));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_nanum"))
        .args(["compare", "--preset", "team", "--rounds", "1", "--skip-limits"])
        .arg("--database-url")
        .arg(contract::test_mysql_url())
        .arg("--redis-url")
        .arg(contract::test_redis_url())
        .arg("--kafka-brokers")
        .arg(contract::test_kafka_brokers())
        .arg("--out")
        .arg(&out)
        .env("APP_ENV", "test")
        .env("APP_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
        .output()
        .await
        .expect("run nanum compare --preset team");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
    let team_rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("The team's scenario"))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| partitions"))
        .collect();
    let partitions: Vec<&str> = team_rows.iter().filter_map(|l| l.split('|').nth(1)).map(str::trim).collect();
    assert_eq!(partitions, ["2", "3", "5", "7"], "{stdout}");
    assert!(team_rows[0].contains("1,032 ms") && team_rows[0].contains("563 ms"), "{}", team_rows[0]);
    assert!(team_rows[2].contains("485 ms"), "{}", team_rows[2]);
    assert!(team_rows[3].contains("slower than 5"), "{}", team_rows[3]);
    for row in &team_rows {
        assert!(row.contains("| 10 / 10 | 0 |"), "every partition count held: {row}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
