//! TPC-H through erhai's full path against plain DataFusion over plain Parquet, side by side.
//!
//! make bench-tpch SF=1        (default SF=0.1: a quick run)
//!
//! Generates the eight tables with tpchgen-arrow, writes them as plain Parquet and registers the
//! same rows in erhai as encrypted datasets (benches/tpch/policy). Every query the policy allows
//! runs (a) through `Engine::run_query` — plan check, encrypted scan, threshold statistics,
//! result checks, quarantine — and (b) in a default DataFusion session over the plain files,
//! interleaved A B A B after a warm-up. Prints per query the medians and erhai / plain, the
//! geometric mean, and checks that both computed the same rows before suppression.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use erhai::demo::store_table;
use erhai::tpch::{POLICIES, QUERIES, generate};
use erhai_engine::{Engine, Limits, MasterKey, StoredTable};

type Error = Box<dyn std::error::Error>;

struct Args {
    sf: f64,
    runs: usize,
}

fn args() -> Result<Args, Error> {
    let mut a = Args { sf: 0.1, runs: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sf" => a.sf = value.parse().map_err(|e| format!("--sf: {e}"))?,
            "--runs" => a.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            other => return Err(format!("unknown flag {other}; use --sf N --runs N").into()),
        }
    }
    if a.sf.is_nan() || a.sf <= 0.0 || a.runs == 0 {
        return Err("--sf must be positive and --runs at least 1".into());
    }
    Ok(a)
}

/// Rows as sorted text, hidden statistics columns dropped, decimals and floats rounded so that
/// two engines' summation orders compare equal.
fn canonical(batches: &[RecordBatch]) -> Result<Vec<String>, Error> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|i| !b.schema().field(*i).name().starts_with("__erhai_"))
            .collect();
        let fmts = keep
            .iter()
            .map(|i| ArrayFormatter::try_new(b.column(*i).as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .map(|f| {
                    let s = f.value(r).to_string();
                    match s.parse::<f64>() {
                        Ok(v) if s.contains('.') => format!("{:.2}", v),
                        _ => s,
                    }
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    Ok(rows)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn write_plain(dir: &Path, name: &str, batches: &[RecordBatch]) -> Result<(), Error> {
    let schema = batches.first().ok_or("no rows")?.schema();
    let file = std::fs::File::create(dir.join(format!("{name}.parquet")))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    erhai::install_crypto_provider();
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir_all(&plain_dir)?;
    let master = MasterKey::create(&dir.path().join("master.key"))?;
    let limits = Limits {
        max_rows: 10_000_000,
        ..Limits::default()
    };
    let engine = Engine::new(dir.path(), master, limits, Default::default())?;

    eprintln!("generating TPC-H SF {} …", a.sf);
    let mut tables: Vec<StoredTable> = Vec::new();
    let plain = SessionContext::new();
    for (name, policy) in POLICIES {
        let batches = generate(name, a.sf)?;
        write_plain(&plain_dir, name, &batches)?;
        tables.push(store_table(
            &engine,
            &format!("tpch-{name}"),
            name,
            policy,
            &batches,
        )?);
        let path = plain_dir.join(format!("{name}.parquet"));
        plain
            .register_parquet(
                name,
                path.to_str().ok_or("path")?,
                ParquetReadOptions::default(),
            )
            .await?;
    }

    println!(
        "| query | plain DataFusion (ms) | erhai full path (ms) | erhai / plain | same rows |"
    );
    println!("| --- | ---: | ---: | ---: | --- |");
    let mut ratios = Vec::new();
    let mut job = 0u64;
    for (name, sql) in QUERIES {
        let sandbox = engine.sandbox(&tables, "bench").await?;
        let checked = match sandbox.prepare(sql, 2).await {
            Ok(c) => c,
            Err(e) => {
                let first = e.to_string().lines().nth(1).unwrap_or("").to_string();
                eprintln!("{name}: refused by the benchmark policy — {first}");
                continue;
            }
        };
        // Same rows before suppression: erhai's executed batches against plain DataFusion's.
        let ours = canonical(&sandbox.execute(&checked).await?.batches)?;
        let theirs = canonical(&plain.sql(sql).await?.collect().await?)?;
        let same = ours == theirs;
        let mut run_plain = Vec::new();
        let mut run_erhai = Vec::new();
        for i in 0..=a.runs {
            let t = Instant::now();
            plain.sql(sql).await?.collect().await?;
            let p = t.elapsed();
            job += 1;
            let t = Instant::now();
            engine
                .run_query(&format!("bench-{job}"), sql, &tables, "bench")
                .await?;
            let e = t.elapsed();
            if i > 0 {
                run_plain.push(p);
                run_erhai.push(e);
            }
        }
        let (p, e) = (median(run_plain), median(run_erhai));
        let ratio = e.as_secs_f64() / p.as_secs_f64();
        ratios.push(ratio);
        println!(
            "| {name} | {:.1} | {:.1} | {ratio:.2} | {} |",
            p.as_secs_f64() * 1e3,
            e.as_secs_f64() * 1e3,
            if same { "yes" } else { "NO" }
        );
        if !same {
            eprintln!(
                "{name}: results differ ({} vs {} rows)",
                ours.len(),
                theirs.len()
            );
        }
    }
    let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp();
    println!(
        "\ngeometric mean erhai / plain over {} queries: {geo:.2}",
        ratios.len()
    );
    dp_queries(&engine, &tables, &plain, a.runs).await
}

/// Q1 and Q6 in differential-privacy mode (ε = 1, δ = 1e-5; an order counts in one group with
/// at most seven lines, values clamped to the bounds in benches/tpch/policy/lineitem.toml)
/// against the same queries in plain DataFusion, interleaved, medians.
async fn dp_queries(
    engine: &Engine,
    tables: &[StoredTable],
    plain: &SessionContext,
    runs: usize,
) -> Result<(), Error> {
    let settings = erhai_policies::dp::DpSettings {
        epsilon_total: 1_000.0,
        delta_total: 1e-4,
        epsilon_per_query: 1.0,
        delta_per_query: 1e-5,
        max_groups_per_unit: 1,
        max_rows_per_unit: 7,
    };
    let req = erhai_engine::dp::DpRequest {
        settings,
        epsilon: 1.0,
    };
    println!(
        "\n| DP query (ε = 1) | plain DataFusion (ms) | erhai DP mode (ms) | erhai / plain | rows |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, sql) in QUERIES.iter().filter(|(n, _)| matches!(*n, "q1" | "q6")) {
        let mut run_plain = Vec::new();
        let mut run_dp = Vec::new();
        let mut rows = 0;
        for i in 0..=runs {
            let t = Instant::now();
            plain.sql(sql).await?.collect().await?;
            let p = t.elapsed();
            let t = Instant::now();
            let out = engine
                .run_dp_query(&format!("dp-{name}-{i}"), sql, tables, "bench", &req)
                .await?;
            let d = t.elapsed();
            rows = out.report.rows_released;
            if i > 0 {
                run_plain.push(p);
                run_dp.push(d);
            }
        }
        let (p, d) = (median(run_plain), median(run_dp));
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {rows} |",
            p.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / p.as_secs_f64()
        );
    }
    Ok(())
}
