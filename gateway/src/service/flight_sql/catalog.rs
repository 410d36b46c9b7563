//! What the Flight SQL catalog shows: one catalog (`erhai`), one schema per scenario (the one the
//! call names), and the scenario's tables with only the columns a query in it may read, each
//! column's kind and allowed uses in the Arrow field metadata.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{Field, Schema};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{SqlInfo, SqlSupportedTransaction};
use erhai_engine::StoredTable;

/// The one catalog name.
pub const CATALOG: &str = "erhai";
/// The one table type.
pub const TABLE_TYPE: &str = "TABLE";

/// Field metadata key: the column's kind (`id_card`, `district`, `measure`, …).
pub const KIND: &str = "erhai.kind";
/// Field metadata key: the uses its policy allows, comma-separated (`group_by,filter`).
pub const USES: &str = "erhai.uses";
/// Field metadata key: the aggregate functions it allows, comma-separated.
pub const AGGREGATES: &str = "erhai.aggregate_functions";
/// Field metadata key: `true` on the privacy unit (what the thresholds count).
pub const PRIVACY_UNIT: &str = "erhai.privacy_unit";

/// A scenario table's columns as a query sees them, each with its policy in the metadata.
pub fn table_schema(t: &StoredTable) -> Schema {
    let fields: Vec<Field> = t
        .schema
        .fields()
        .iter()
        .map(|f| {
            let mut meta = HashMap::new();
            if let Some(p) = t.policy.column(f.name()) {
                meta.insert(KIND.to_string(), p.kind.name().to_string());
                let uses: Vec<&str> = p.uses.iter().map(|u| u.name()).collect();
                meta.insert(USES.to_string(), uses.join(","));
                if !p.aggregate_functions.is_empty() {
                    let fns: Vec<&str> = p.aggregate_functions.iter().map(String::as_str).collect();
                    meta.insert(AGGREGATES.to_string(), fns.join(","));
                }
            }
            if f.name() == &t.policy.privacy_unit {
                meta.insert(PRIVACY_UNIT.to_string(), "true".to_string());
            }
            f.as_ref().clone().with_metadata(meta)
        })
        .collect();
    Schema::new(fields)
}

/// What GetSqlInfo answers: who the server is and that it only reads.
pub static SQL_INFO: LazyLock<Arc<SqlInfoData>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "erhai");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    // Building a fixed set of known values cannot fail; an empty answer would be the fallback.
    Arc::new(b.build().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the Flight SQL server information could not be built");
        SqlInfoDataBuilder::new()
            .build()
            .expect("an empty SqlInfoData always builds")
    }))
});
