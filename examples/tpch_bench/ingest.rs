//! Masking against DuckDB over the same Parquet column, and registration throughput against
//! DataFusion writing the same data to plain Parquet.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::StringBuilder;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use erhai_devkit::demo::Platform;
use erhai_engine::MasterKey;

use crate::peers::{Answer, Peers};
use crate::{Error, Report, median, ms};

/// Writes `n` mobile numbers (11 digits, `1[3-9]` then nine digits) to `dir/phones.parquet`.
pub fn write_phones(dir: &Path, n: usize) -> Result<(), Error> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "phone",
        DataType::Utf8,
        false,
    )]));
    let file = std::fs::File::create(dir.join("phones.parquet"))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)?;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut left = n;
    while left > 0 {
        let rows = left.min(1 << 20);
        let mut b = StringBuilder::with_capacity(rows, rows * 11);
        for _ in 0..rows {
            // xorshift: reproducible digits without a dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let second = 3 + state % 7;
            b.append_value(format!("1{second}{:09}", (state >> 8) % 1_000_000_000));
        }
        w.write(&RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(b.finish())],
        )?)?;
        left -= rows;
    }
    w.close()?;
    Ok(())
}

/// `mask_phone` in erhai's kernel against DuckDB's `concat(substr…)` over the same 10M-value
/// Parquet column, each inside `max(…)` so that every masked value is computed and nothing but
/// one row leaves the engine; DataFusion's `concat(substr…)` and a bare `max(phone)` (the scan)
/// for reference.
pub async fn masking(
    peers: &mut Peers,
    dir: &Path,
    runs: usize,
    r: &mut Report,
) -> Result<(), Error> {
    let tmp = tempfile::tempdir()?;
    let master = MasterKey::create(&tmp.path().join("master.key"))?;
    let ctx = SessionContext::new();
    for f in erhai_engine::testing::mask_functions(&master.pseudonym_key("bench")) {
        ctx.register_udf(f.as_ref().clone());
    }
    let path = dir.join("phones.parquet");
    ctx.register_parquet(
        "phones",
        path.to_str().ok_or("path")?,
        ParquetReadOptions::default(),
    )
    .await?;
    let n: usize = ctx
        .sql("SELECT count(*) FROM phones")
        .await?
        .collect()
        .await?
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|c| c.value(0) as usize)
        })
        .ok_or("count of phones")?;
    let concat = "SELECT max(concat(substr(phone, 1, 3), '****', substr(phone, 8, 4))) FROM phones";
    let erhai_sql = "SELECT max(mask_phone(phone)) FROM phones";
    let (mut t_erhai, mut t_duck, mut t_df) = (vec![], vec![], vec![]);
    for i in 0..=runs {
        let time = async |sql: &str| -> Result<f64, Error> {
            let t = Instant::now();
            ctx.sql(sql).await?.collect().await?;
            Ok(ms(t.elapsed()))
        };
        let e = time(erhai_sql).await?;
        let df = time(concat).await?;
        let d = match peers.duckdb(concat)? {
            Answer::Ran { ms, .. } => ms,
            Answer::Refused(why) => return Err(format!("DuckDB: {why}").into()),
        };
        if i > 0 {
            t_erhai.push(e);
            t_df.push(df);
            t_duck.push(d);
        }
    }
    let rate = |ms: f64| n as f64 / (ms / 1e3) / 1e6;
    let (e, d, df) = (median(t_erhai), median(t_duck), median(t_df));
    r.line("");
    r.line(format!(
        "Masking {n} mobile numbers read from one Parquet column (values/s over the whole query; \
         both engines on 2 cores):"
    ));
    r.line("");
    r.line("| query | engine | ms | M values/s |");
    r.line("| --- | --- | ---: | ---: |");
    r.line(format!(
        "| `max(mask_phone(phone))` | erhai's mask in DataFusion | {e:.1} | {:.1} |",
        rate(e)
    ));
    r.line(format!(
        "| `max(concat(substr(phone,1,3),'****',substr(phone,8,4)))` | DuckDB | {d:.1} | {:.1} |",
        rate(d)
    ));
    r.line(format!(
        "| the same expression | DataFusion | {df:.1} | {:.1} |",
        rate(df)
    ));
    r.line("");
    r.line(format!(
        "erhai's `mask_phone` / DuckDB's expression, in values per second: **{:.2}**.",
        d / e
    ));
    Ok(())
}

/// Registration of lineitem through the real server (TLS, gRPC upload, policy check, encrypted
/// Parquet with fsync, the development sample) from a CSV and from a Parquet file, read as
/// `erhai dataset register` reads them, against DataFusion reading the same file and writing
/// plain Parquet; alternated, medians.
pub async fn registration(dir: &Path, sf: f64, runs: usize, r: &mut Report) -> Result<(), Error> {
    let parquet_path = dir.join("lineitem.parquet");
    let csv_path = dir.join("lineitem.csv");
    {
        let ctx = SessionContext::new();
        ctx.read_parquet(
            parquet_path.to_str().ok_or("path")?,
            ParquetReadOptions::default(),
        )
        .await?
        .write_csv(
            csv_path.to_str().ok_or("path")?,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    }
    let policy_text = erhai_devkit::tpch::POLICIES
        .iter()
        .find(|(n, _)| *n == "lineitem")
        .map(|(_, p)| *p)
        .ok_or("lineitem policy")?;
    let platform = Platform::start(None, |_| {}).await?;
    platform
        .add_user("provider", "提供方", "provider", "", "tpch-unit")
        .await?;
    let client = platform.client("provider").await?;
    let out = tempfile::tempdir()?;
    let mut rows = 0;
    let mut results = Vec::new();
    for (format, path) in [("CSV", &csv_path), ("Parquet", &parquet_path)] {
        let (mut t_erhai, mut t_df) = (vec![], vec![]);
        for i in 0..=runs {
            let ctx = SessionContext::new();
            let p = path.to_str().ok_or("path")?;
            let target = out.path().join(format!("{format}-{i}"));
            let t = Instant::now();
            let df = match format {
                "CSV" => ctx.read_csv(p, CsvReadOptions::new()).await?,
                _ => ctx.read_parquet(p, ParquetReadOptions::default()).await?,
            };
            df.write_parquet(
                target.to_str().ok_or("path")?,
                DataFrameWriteOptions::new(),
                None,
            )
            .await?;
            let d = ms(t.elapsed());
            let t = Instant::now();
            let (schema, batches) = erhai_client::files::read_data(path, Some(policy_text))?;
            let registered = client
                .register(
                    &format!("lineitem_{}_{i}", format.to_lowercase()),
                    "",
                    policy_text,
                    schema,
                    batches,
                )
                .await?;
            let e = ms(t.elapsed());
            rows = registered.rows;
            if i > 0 || runs == 0 {
                t_erhai.push(e);
                t_df.push(d);
            }
        }
        results.push((format, median(t_df), median(t_erhai)));
    }
    platform.stop().await?;
    r.line("");
    r.line(format!(
        "Registering lineitem (SF {sf}, {rows} rows) into encrypted Parquet through the server, \
         against DataFusion writing the same file to plain Parquet:"
    ));
    r.line("");
    r.line("| input | DataFusion to plain Parquet (ms) | erhai registration (ms) | erhai rows/s | erhai / DataFusion |");
    r.line("| --- | ---: | ---: | ---: | ---: |");
    for (format, d, e) in results {
        r.line(format!(
            "| {format} | {d:.0} | {e:.0} | {:.2} M | {:.2} |",
            rows as f64 / (e / 1e3) / 1e6,
            e / d
        ));
    }
    Ok(())
}
