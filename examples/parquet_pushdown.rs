//! Does DataFusion's Parquet filter pushdown (late materialization, `pushdown_filters` and
//! `reorder_filters`) pay on the TPC-H files erhai writes? Plain DataFusion over the same
//! SF 1 files (SNAPPY, 128K-row groups, page index as written by default), default settings
//! against pushdown on, interleaved, medians of 3 after a warm-up.
//!
//! cargo run --release --example parquet_pushdown [-- DIR]

use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use erhai_devkit::tpch::{POLICIES, QUERIES, generate};

/// The queries the benchmark policy allows (see docs/BENCHMARKS.md).
const ALLOWED: [&str; 12] = [
    "q1", "q4", "q5", "q6", "q7", "q8", "q9", "q12", "q14", "q16", "q17", "q19",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    for (name, _) in POLICIES {
        let path = dir.join(format!("{name}.parquet"));
        if path.exists() {
            continue;
        }
        let batches = generate(name, 1.0)?;
        let schema = batches.first().ok_or("no rows")?.schema();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path)?,
            schema,
            Some(props),
        )?;
        for b in &batches {
            w.write(b)?;
        }
        w.close()?;
    }
    let session = |pushdown: bool| {
        let mut cfg = SessionConfig::new();
        cfg.options_mut().execution.parquet.pushdown_filters = pushdown;
        cfg.options_mut().execution.parquet.reorder_filters = pushdown;
        SessionContext::new_with_config(cfg)
    };
    let (default, pushdown) = (session(false), session(true));
    for ctx in [&default, &pushdown] {
        for (name, _) in POLICIES {
            let path = dir.join(format!("{name}.parquet"));
            ctx.register_parquet(
                name,
                path.to_str().ok_or("path")?,
                ParquetReadOptions::default(),
            )
            .await?;
        }
    }
    println!("| query | default (ms) | filter pushdown (ms) | pushdown / default |");
    println!("| --- | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    for (name, sql) in QUERIES.iter().filter(|(n, _)| ALLOWED.contains(n)) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..4 {
            let t = Instant::now();
            default.sql(sql).await?.collect().await?;
            let x = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            pushdown.sql(sql).await?.collect().await?;
            let y = t.elapsed().as_secs_f64() * 1e3;
            if i > 0 {
                a.push(x);
                b.push(y);
            }
        }
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} |",
            a[1],
            b[1],
            b[1] / a[1]
        );
        ratios.push(b[1] / a[1]);
    }
    let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
    println!("\ngeometric mean pushdown / default: {geo:.2}");
    Ok(())
}
