//! TPC-H for the benchmarks: the eight tables generated in-process by `tpchgen-arrow` (no
//! downloads), registered as encrypted datasets under the policy in `benches/tpch/policy/`, and
//! the 22 queries of the specification with its validation parameters (`benches/tpch/queries/`).

use arrow::record_batch::RecordBatch;
use erhai_engine::{Engine, StoredTable};

use crate::demo::store_table;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// Rows per generated batch.
const BATCH_ROWS: usize = 64 * 1024;

macro_rules! query {
    ($n:literal) => {
        (
            concat!("q", $n),
            include_str!(concat!("../../benches/tpch/queries/q", $n, ".sql")),
        )
    };
}

/// The 22 queries, named `q1` … `q22`.
pub const QUERIES: [(&str, &str); 22] = [
    query!(1),
    query!(2),
    query!(3),
    query!(4),
    query!(5),
    query!(6),
    query!(7),
    query!(8),
    query!(9),
    query!(10),
    query!(11),
    query!(12),
    query!(13),
    query!(14),
    query!(15),
    query!(16),
    query!(17),
    query!(18),
    query!(19),
    query!(20),
    query!(21),
    query!(22),
];

macro_rules! policy {
    ($t:literal) => {
        (
            $t,
            include_str!(concat!("../../benches/tpch/policy/", $t, ".toml")),
        )
    };
}

/// Each table's column policy.
pub const POLICIES: [(&str, &str); 8] = [
    policy!("region"),
    policy!("nation"),
    policy!("supplier"),
    policy!("customer"),
    policy!("part"),
    policy!("partsupp"),
    policy!("orders"),
    policy!("lineitem"),
];

type Batches = Result<Vec<RecordBatch>, arrow::error::ArrowError>;

/// Generates one table at scale factor `sf`.
pub fn generate(table: &str, sf: f64) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let b = BATCH_ROWS;
    let batches: Batches = match table {
        "region" => RegionArrow::new(RegionGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "nation" => NationArrow::new(NationGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "supplier" => SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "customer" => CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "part" => PartArrow::new(PartGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "partsupp" => PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "orders" => OrderArrow::new(OrderGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        "lineitem" => LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))
            .with_batch_size(b)
            .collect(),
        other => return Err(format!("no TPC-H table `{other}`").into()),
    };
    Ok(batches?)
}

/// Generates all eight tables at scale factor `sf` and registers them in `engine` as encrypted
/// datasets under the benchmark policy.
pub fn store_tables(
    engine: &Engine,
    sf: f64,
) -> Result<Vec<StoredTable>, Box<dyn std::error::Error>> {
    POLICIES
        .iter()
        .map(|(name, policy)| {
            let batches = generate(name, sf)?;
            store_table(engine, &format!("tpch-{name}"), name, policy, &batches)
        })
        .collect()
}
