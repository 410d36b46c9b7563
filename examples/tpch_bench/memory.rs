//! Peak resident memory of an engine process running the harness's queries under a 2 GiB query
//! memory pool, and what a query that needs more than its pool gets.
//!
//! The harness holds generated tables in memory, so its own peak says nothing about the engine.
//! It re-runs itself with `--memory-probe DIR`: a fresh process that opens the stored, encrypted
//! tables (as the server does), runs every allowed query and DP Q1, and reports its `VmHWM`.

use std::path::Path;
use std::process::Command;

use erhai_devkit::tpch::{POLICIES, QUERIES, generate};
use erhai_engine::{Engine, Limits, MasterKey, StoredTable};
use serde_json::{Value, json};

use crate::{Error, Report};

const TABLES_FILE: &str = "probe-tables.json";
const POOL: usize = 2 << 30;
const SMALL_POOL: usize = 64 << 20;

/// Runs the probe in a child process and reports its figures.
pub fn measure(dir: &Path, tables: &[StoredTable], r: &mut Report) -> Result<(), Error> {
    let list: Vec<Value> = tables
        .iter()
        .map(|t| {
            json!({"name": t.name, "id": t.dataset_id, "version": t.version,
                   "wrapped_key": hex::encode(&t.wrapped_key)})
        })
        .collect();
    std::fs::write(dir.join(TABLES_FILE), serde_json::to_vec(&list)?)?;
    eprintln!("measuring the engine's peak memory in a fresh process …");
    let out = Command::new(std::env::current_exe()?)
        .arg("--memory-probe")
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "memory probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    r.line("");
    r.line(format!(
        "Peak resident memory (VmHWM) of a fresh engine process that ran the {} allowed queries \
         and DP Q1 over the stored encrypted tables with a {} GiB query memory pool: **{:.0} MiB**. \
         With a {} MiB pool, Q1 (its disclosure statistics keep per-order state) fails with: \
         `{}`",
        v["queries"],
        POOL >> 30,
        v["peak_mib"].as_f64().unwrap_or(f64::NAN),
        SMALL_POOL >> 20,
        v["small_pool"].as_str().unwrap_or("?")
    ));
    Ok(())
}

fn peak_mib() -> f64 {
    crate::proc_mib("/proc/self/status", "VmHWM").unwrap_or(f64::NAN)
}

/// The child: opens the stored tables and runs the queries; prints one JSON object.
pub async fn probe(dir: &Path) -> Result<(), Error> {
    let list: Vec<Value> = serde_json::from_slice(&std::fs::read(dir.join(TABLES_FILE))?)?;
    let mut tables = Vec::new();
    for t in &list {
        let name = t["name"].as_str().ok_or("name")?;
        let policy = POLICIES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| erhai_policies::policy_file::parse_policy(p))
            .ok_or("policy")??;
        // The schema does not depend on the scale factor: a tiny table gives it.
        let schema = generate(name, 0.001)?
            .first()
            .map(|b| b.schema())
            .ok_or("schema")?;
        tables.push(StoredTable {
            name: name.into(),
            dataset_id: t["id"].as_str().ok_or("id")?.into(),
            version: t["version"].as_u64().ok_or("version")? as u32,
            wrapped_key: hex::decode(t["wrapped_key"].as_str().ok_or("key")?)?,
            schema,
            policy,
            env: erhai_engine::Env::Prod,
        });
    }
    let master = MasterKey::load(&dir.join("master.key"))?;
    let limits = Limits {
        memory_bytes: POOL,
        max_rows: 10_000_000,
        ..Limits::default()
    };
    let engine = Engine::new(dir, master, limits.clone(), Default::default())?;
    let mut ran = 0;
    for (i, (_, sql)) in QUERIES.iter().enumerate() {
        if engine
            .run_query(&format!("probe-{i}"), sql, &tables, "bench")
            .await
            .is_ok()
        {
            ran += 1;
        }
    }
    let req = erhai_engine::DpRequest {
        settings: erhai_policies::dp::DpSettings {
            epsilon_total: 10.0,
            delta_total: 1e-4,
            epsilon_per_query: 1.0,
            delta_per_query: 1e-5,
            max_groups_per_unit: 1,
            max_rows_per_unit: 7,
        },
        epsilon: 1.0,
    };
    crate::run_dp(&engine, "probe-dp", QUERIES[0].1, &tables, &req).await?;
    let peak = peak_mib();
    let small = Engine::new(
        dir,
        MasterKey::load(&dir.join("master.key"))?,
        Limits {
            memory_bytes: SMALL_POOL,
            ..limits
        },
        Default::default(),
    )?;
    let small_pool = match small
        .run_query("probe-small", QUERIES[0].1, &tables, "bench")
        .await
    {
        Ok(_) => "no error: Q1 fitted".to_string(),
        Err(e) => e.to_string().lines().next().unwrap_or("").to_string(),
    };
    println!(
        "{}",
        json!({"peak_mib": peak, "queries": ran, "small_pool": small_pool})
    );
    Ok(())
}
