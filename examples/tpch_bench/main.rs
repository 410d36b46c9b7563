//! TPC-H through erhai's full path against plain DataFusion over plain Parquet, and (with
//! `--peers`) against DuckDB and SmartNoise SQL, side by side in one run.
//!
//! make bench-tpch SF=1        (default SF=0.1: a quick run)
//! make bench-peers SF=1       (also DuckDB, SmartNoise SQL, masking, ingest and memory)
//!
//! Generates the eight tables with tpchgen-arrow, writes them as plain Parquet and registers the
//! same rows in erhai as encrypted datasets (benches/tpch/policy). Every query the policy allows
//! runs (a) through `Engine::run_query` — plan check, encrypted scan, disclosure statistics,
//! result checks, quarantine — (b) in a default DataFusion session over the plain files, and, as
//! built, (c) through erhai with dataset encryption off (feature `bench-plaintext`) and (d) in
//! DuckDB over the same files: interleaved a b c d a b c d after a warm-up. Prints per query the
//! medians and the ratios, the geometric means, and checks that (a) and (b) computed the same
//! rows before suppression. `--docs FILE` writes the tables into FILE between this run's markers.

mod ingest;
mod memory;
mod peers;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use erhai_devkit::demo::store_table;
use erhai_devkit::tpch::{POLICIES, QUERIES, generate};
use erhai_engine::{Engine, Limits, MasterKey, StoredTable};

use peers::{Answer, Peers};

type Error = Box<dyn std::error::Error>;

/// The cache budget of the cached engine: room for every SF 1 table.
const CACHE_BYTES: usize = 8 << 30;

struct Args {
    sf: f64,
    runs: usize,
    peers: Option<PathBuf>,
    docs: Option<PathBuf>,
    memory_probe: Option<PathBuf>,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        sf: 0.1,
        runs: 5,
        peers: None,
        docs: None,
        memory_probe: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sf" => a.sf = value.parse().map_err(|e| format!("--sf: {e}"))?,
            "--runs" => a.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            "--peers" => a.peers = Some(value.into()),
            "--docs" => a.docs = Some(value.into()),
            "--memory-probe" => a.memory_probe = Some(value.into()),
            other => {
                return Err(format!(
                    "unknown flag {other}; use --sf N --runs N [--peers PYTHON] [--docs FILE]"
                )
                .into());
            }
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|r| r.ln()).sum::<f64>() / v.len().max(1) as f64).exp()
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

/// The run's Markdown, printed as it grows and written into the docs at the end.
#[derive(Default)]
pub struct Report(Vec<String>);

impl Report {
    pub fn line(&mut self, s: impl Into<String>) {
        let s = s.into();
        println!("{s}");
        self.0.push(s);
    }
}

/// The value after `key:` on the first line of `/proc/…` file `path` that starts with `key`.
pub fn proc_value(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    })
}

/// A `/proc` size in kB (`12345 kB`) in MiB.
pub fn proc_mib(path: &str, key: &str) -> Option<f64> {
    proc_value(path, key)?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// Where the run happened: CPU, cores, memory, date.
fn machine() -> String {
    let cpu = proc_value("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let mem = proc_mib("/proc/meminfo", "MemTotal")
        .map(|mib| format!("{:.0} GiB", mib / 1024.0))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{} UTC on {cpu}, {cores} cores, {mem}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    )
}

/// Replaces the text between this run's markers in `path` (appending them if absent).
fn write_docs(path: &Path, marker: &str, body: &str) -> Result<(), Error> {
    let (begin, end) = (
        format!("<!-- {marker}:begin -->"),
        format!("<!-- {marker}:end -->"),
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{body}\n{end}");
    let updated = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &text[..b], &text[e + end.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, updated)?;
    eprintln!("wrote the tables to {} ({marker})", path.display());
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    erhai::install_crypto_provider();
    let a = args()?;
    if let Some(dir) = &a.memory_probe {
        return memory::probe(dir).await;
    }
    let dir = tempfile::tempdir()?;
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir_all(&plain_dir)?;
    let limits = Limits {
        max_rows: 10_000_000,
        ..Limits::default()
    };
    let master = MasterKey::create(&dir.path().join("master.key"))?;
    let engine = Engine::new(dir.path(), master, limits.clone(), Default::default())?;
    // The same stored tables, read through the decrypted-batch cache.
    let cached = Engine::new(
        dir.path(),
        MasterKey::load(&dir.path().join("master.key"))?,
        Limits {
            cache_bytes: CACHE_BYTES,
            ..limits.clone()
        },
        Default::default(),
    )?;
    #[cfg(feature = "bench-plaintext")]
    let unencrypted = {
        let d = dir.path().join("unencrypted");
        std::fs::create_dir_all(&d)?;
        let master = MasterKey::create(&d.join("master.key"))?;
        Engine::new(&d, master, limits.clone(), Default::default())?.plaintext_for_benchmarks()
    };

    eprintln!("generating TPC-H SF {} …", a.sf);
    let mut tables: Vec<StoredTable> = Vec::new();
    #[cfg(feature = "bench-plaintext")]
    let mut unencrypted_tables: Vec<StoredTable> = Vec::new();
    let plain = SessionContext::new();
    for (name, policy) in POLICIES {
        let batches = generate(name, a.sf)?;
        write_plain(&plain_dir, name, &batches)?;
        let id = format!("tpch-{name}");
        tables.push(store_table(&engine, &id, name, policy, &batches)?);
        #[cfg(feature = "bench-plaintext")]
        unencrypted_tables.push(store_table(&unencrypted, &id, name, policy, &batches)?);
        let path = plain_dir.join(format!("{name}.parquet"));
        plain
            .register_parquet(
                name,
                path.to_str().ok_or("path")?,
                ParquetReadOptions::default(),
            )
            .await?;
    }
    let mut peers = match &a.peers {
        Some(python) => {
            ingest::write_phones(&plain_dir, 10_000_000)?;
            let mut p = Peers::start(python)?;
            let v = p.duckdb_open(&plain_dir)?;
            eprintln!("DuckDB {v} over the same Parquet files");
            Some(p)
        }
        None => None,
    };

    let mut r = Report::default();
    let command = match &a.peers {
        Some(_) => format!("make bench-peers SF={} RUNS={}", a.sf, a.runs),
        None => format!("make bench-tpch SF={} RUNS={}", a.sf, a.runs),
    };
    r.line(format!("`{command}` — {}, release build.", machine()));
    r.line("");
    let mut header = vec![
        "query",
        "plain DataFusion (ms)",
        "erhai (ms)",
        "erhai, cache (ms)",
    ];
    let mut rule = vec!["---", "---:", "---:", "---:"];
    #[cfg(feature = "bench-plaintext")]
    {
        header.push("erhai, encryption off (ms)");
        rule.push("---:");
    }
    if peers.is_some() {
        header.push("DuckDB (ms)");
        rule.push("---:");
    }
    header.extend(["erhai / plain", "cache / plain"]);
    rule.extend(["---:", "---:"]);
    #[cfg(feature = "bench-plaintext")]
    {
        header.push("enc. off / plain");
        rule.push("---:");
    }
    if peers.is_some() {
        header.extend(["erhai / DuckDB", "cache / DuckDB", "DataFusion / DuckDB"]);
        rule.extend(["---:", "---:", "---:"]);
    }
    header.push("same rows");
    rule.push("---");
    r.line(format!("| {} |", header.join(" | ")));
    r.line(format!("| {} |", rule.join(" | ")));

    let mut ratios = Vec::new();
    let mut ratios_cache = Vec::new();
    let mut ratios_cache_duck = Vec::new();
    #[cfg_attr(not(feature = "bench-plaintext"), allow(unused_mut))]
    let mut ratios_off = Vec::new();
    let mut ratios_duck = Vec::new();
    let mut ratios_df_duck = Vec::new();
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
        let (mut t_plain, mut t_erhai, mut t_off, mut t_duck) = (vec![], vec![], vec![], vec![]);
        let mut t_cache = vec![];
        for i in 0..=a.runs {
            let t = Instant::now();
            plain.sql(sql).await?.collect().await?;
            let p = ms(t.elapsed());
            job += 1;
            let t = Instant::now();
            engine
                .run_query(&format!("bench-{job}"), sql, &tables, "bench")
                .await?;
            let e = ms(t.elapsed());
            let t = Instant::now();
            cached
                .run_query(&format!("bench-{job}-c"), sql, &tables, "bench")
                .await?;
            let c = ms(t.elapsed());
            #[cfg(feature = "bench-plaintext")]
            let off = {
                let t = Instant::now();
                unencrypted
                    .run_query(&format!("bench-{job}"), sql, &unencrypted_tables, "bench")
                    .await?;
                ms(t.elapsed())
            };
            #[cfg(not(feature = "bench-plaintext"))]
            let off = f64::NAN;
            let duck = match peers.as_mut() {
                Some(p) => match p.duckdb(sql)? {
                    Answer::Ran { ms, rows } => {
                        if rows as usize != theirs.len() {
                            eprintln!(
                                "{name}: DuckDB returned {rows} rows, DataFusion {}",
                                theirs.len()
                            );
                        }
                        ms
                    }
                    Answer::Refused(why) => return Err(format!("DuckDB {name}: {why}").into()),
                },
                None => f64::NAN,
            };
            if i > 0 {
                t_plain.push(p);
                t_erhai.push(e);
                t_cache.push(c);
                t_off.push(off);
                t_duck.push(duck);
            }
        }
        let (p, e, off, duck) = (
            median(t_plain),
            median(t_erhai),
            median(t_off),
            median(t_duck),
        );
        let c = median(t_cache);
        ratios.push(e / p);
        ratios_cache.push(c / p);
        let mut cells = vec![
            name.to_string(),
            format!("{p:.1}"),
            format!("{e:.1}"),
            format!("{c:.1}"),
        ];
        #[cfg(feature = "bench-plaintext")]
        cells.push(format!("{off:.1}"));
        if peers.is_some() {
            cells.push(format!("{duck:.1}"));
        }
        cells.push(format!("{:.2}", e / p));
        cells.push(format!("{:.2}", c / p));
        #[cfg(feature = "bench-plaintext")]
        {
            ratios_off.push(off / p);
            cells.push(format!("{:.2}", off / p));
        }
        if peers.is_some() {
            ratios_duck.push(e / duck);
            ratios_cache_duck.push(c / duck);
            ratios_df_duck.push(p / duck);
            cells.push(format!("{:.2}", e / duck));
            cells.push(format!("{:.2}", c / duck));
            cells.push(format!("{:.2}", p / duck));
        }
        cells.push(if same { "yes" } else { "NO" }.to_string());
        r.line(format!("| {} |", cells.join(" | ")));
        if !same {
            eprintln!(
                "{name}: results differ ({} vs {} rows)",
                ours.len(),
                theirs.len()
            );
        }
        let _ = off;
    }
    r.line("");
    r.line(format!(
        "Geometric means over {} queries: erhai / plain DataFusion **{:.2}**; with the \
         decrypted-batch cache **{:.2}**{}{}.",
        ratios.len(),
        geomean(&ratios),
        geomean(&ratios_cache),
        if ratios_off.is_empty() {
            String::new()
        } else {
            format!("; with encryption off **{:.2}**", geomean(&ratios_off))
        },
        if ratios_duck.is_empty() {
            String::new()
        } else {
            format!(
                "; erhai / DuckDB **{:.2}**, with the cache **{:.2}** (plain DataFusion / \
                 DuckDB {:.2})",
                geomean(&ratios_duck),
                geomean(&ratios_cache_duck),
                geomean(&ratios_df_duck)
            )
        }
    ));
    dp_queries(
        [&engine, &cached],
        &tables,
        &plain,
        &mut peers,
        &plain_dir,
        a.runs,
        &mut r,
    )
    .await?;
    if let Some(p) = peers.as_mut() {
        ingest::masking(p, &plain_dir, a.runs, &mut r).await?;
        ingest::registration(&plain_dir, a.sf, a.runs.min(3), &mut r).await?;
        memory::measure(dir.path(), &tables, &mut r)?;
        r.line("");
        r.line(format!(
            "Peak resident memory of the Python peers' process (DuckDB and SmartNoise SQL): {:.0} MiB.",
            p.peak_rss_mib()?
        ));
    }
    if let Some(docs) = &a.docs {
        let marker = if a.peers.is_some() {
            format!("bench-peers-sf{}", a.sf)
        } else {
            format!("bench-tpch-sf{}", a.sf)
        };
        write_docs(docs, &marker, &r.0.join("\n"))?;
    }
    Ok(())
}

/// `sql` as SmartNoise SQL's parser takes it: its schema-qualified table, date arithmetic done
/// beforehand (it has no `date '…'` literals or intervals). Nothing else changes, so what it
/// refuses it refuses for what the query computes.
fn smartnoise_dialect(sql: &str) -> String {
    [
        ("date '1998-12-01' - interval '90' day", "'1998-09-02'"),
        ("date '1994-01-01' + interval '1' year", "'1995-01-01'"),
        ("date '1994-01-01'", "'1994-01-01'"),
        ("from\n    lineitem", "from\n    tpch.lineitem"),
        ("FROM lineitem", "FROM tpch.lineitem"),
    ]
    .iter()
    .fold(sql.to_string(), |s, (from, to)| s.replace(from, to))
}

/// Q1 as SmartNoise SQL can answer it: no aggregate over an expression.
const Q1_WITHOUT_EXPRESSIONS: &str = "SELECT l_returnflag, l_linestatus, \
    SUM(l_quantity) AS sum_qty, SUM(l_extendedprice) AS sum_base_price, \
    AVG(l_quantity) AS avg_qty, AVG(l_extendedprice) AS avg_price, AVG(l_discount) AS avg_disc, \
    COUNT(*) AS count_order FROM lineitem WHERE l_shipdate <= '1998-09-02' \
    GROUP BY l_returnflag, l_linestatus";

/// Q1 and Q6 in differential-privacy mode (ε = 1, δ = 1e-5; an order counts in one group with
/// at most seven lines, values clamped to the bounds in benches/tpch/policy/lineitem.toml)
/// against the same queries in plain DataFusion and, with peers, in SmartNoise SQL (same ε, δ,
/// at most seven rows per order, the same bounds), interleaved, medians.
async fn dp_queries(
    [engine, cached]: [&Engine; 2],
    tables: &[StoredTable],
    plain: &SessionContext,
    peers: &mut Option<Peers>,
    plain_dir: &Path,
    runs: usize,
    r: &mut Report,
) -> Result<(), Error> {
    let (epsilon, delta, rows_per_unit) = (1.0, 1e-5, 7);
    let settings = erhai_policies::dp::DpSettings {
        epsilon_total: 1_000.0,
        delta_total: 1e-4,
        epsilon_per_query: epsilon,
        delta_per_query: delta,
        max_groups_per_unit: 1,
        max_rows_per_unit: rows_per_unit,
    };
    let req = erhai_engine::DpRequest { settings, epsilon };
    let mut load_ms = None;
    if let Some(p) = peers.as_mut() {
        eprintln!("loading lineitem into SmartNoise SQL …");
        load_ms = Some(p.smartnoise_open(
            "lineitem",
            &plain_dir.join("lineitem.parquet"),
            "l_orderkey",
            &[
                ("l_quantity", 0.0, 50.0),
                ("l_extendedprice", 0.0, 105_000.0),
                ("l_discount", 0.0, 0.1),
                ("l_tax", 0.0, 0.08),
            ],
            (epsilon, delta, rows_per_unit),
        )?);
    }
    r.line("");
    r.line(format!(
        "Differential privacy (ε = {epsilon}, δ = {delta}; an order in one group with at most \
         {rows_per_unit} lines; declared bounds):"
    ));
    r.line("");
    let with_peers = peers.is_some();
    if with_peers {
        r.line("| DP query | plain DataFusion (ms) | erhai DP (ms) | erhai DP, cache (ms) | SmartNoise SQL (ms) | erhai / plain | SmartNoise / erhai | SmartNoise / erhai with cache | groups released (erhai) |");
        r.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    } else {
        r.line("| DP query | plain DataFusion (ms) | erhai DP (ms) | erhai DP, cache (ms) | erhai / plain | cache / plain | groups released |");
        r.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    }
    let queries: Vec<(&str, &str)> = QUERIES
        .iter()
        .filter(|(n, _)| matches!(*n, "q1" | "q6"))
        .copied()
        .chain([("q1 without expressions", Q1_WITHOUT_EXPRESSIONS)])
        .collect();
    // SmartNoise is slow; its runs are capped so that the whole harness stays in minutes.
    let peer_runs = runs.min(3);
    for (name, sql) in queries {
        let (mut t_plain, mut t_dp, mut t_sn, mut t_cache) = (vec![], vec![], vec![], vec![]);
        let mut refused = None;
        let mut rows = 0;
        for i in 0..=runs {
            let t = Instant::now();
            plain.sql(sql).await?.collect().await?;
            let p = ms(t.elapsed());
            let t = Instant::now();
            let out = run_dp(engine, &format!("dp-{i}"), sql, tables, &req).await?;
            let d = ms(t.elapsed());
            rows = out.report.rows_released;
            let t = Instant::now();
            run_dp(cached, &format!("dp-{i}-c"), sql, tables, &req).await?;
            let c = ms(t.elapsed());
            if i > 0 {
                t_plain.push(p);
                t_dp.push(d);
                t_cache.push(c);
            }
            if let Some(peer) = peers.as_mut()
                && i <= peer_runs
                && refused.is_none()
            {
                match peer.smartnoise(&smartnoise_dialect(sql))? {
                    Answer::Ran { ms, .. } if i > 0 => t_sn.push(ms),
                    Answer::Ran { .. } => {}
                    Answer::Refused(why) => refused = Some(why),
                }
            }
        }
        let (p, d, c) = (median(t_plain), median(t_dp), median(t_cache));
        if with_peers {
            let (sn, vs, vc) = match &refused {
                Some(why) => (
                    format!("refused: {}", why.lines().next().unwrap_or("")),
                    "—".to_string(),
                    "—".to_string(),
                ),
                None => {
                    let s = median(t_sn);
                    (
                        format!("{s:.1}"),
                        format!("{:.1}", s / d),
                        format!("{:.1}", s / c),
                    )
                }
            };
            r.line(format!(
                "| {name} | {p:.1} | {d:.1} | {c:.1} | {sn} | {:.2} | {vs} | {vc} | {rows} |",
                d / p
            ));
        } else {
            r.line(format!(
                "| {name} | {p:.1} | {d:.1} | {c:.1} | {:.2} | {:.2} | {rows} |",
                d / p,
                c / p
            ));
        }
    }
    if let Some(ms) = load_ms {
        r.line("");
        r.line(format!(
            "SmartNoise SQL first loads lineitem into its reader: {:.1} s (not counted above).",
            ms / 1e3
        ));
    }
    Ok(())
}

/// A query answered in differential-privacy mode, as a DP scenario's job runs it.
pub(crate) async fn run_dp(
    engine: &Engine,
    job: &str,
    sql: &str,
    tables: &[StoredTable],
    req: &erhai_engine::DpRequest,
) -> erhai_engine::Result<erhai_engine::QueryOutcome> {
    let disclosure = erhai_engine::Disclosure::Noise(req.clone());
    let prepared = engine.prepare(sql, tables, "bench", disclosure).await?;
    engine.run(job, prepared, &erhai_engine::NoReleases).await
}
