//! The Python peers (DuckDB, SmartNoise SQL) of `make bench-peers`, driven over a line protocol
//! by `benches/peers/peer.py` so that their runs interleave with erhai's in one process run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// A running `peer.py`.
pub struct Peers {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What a peer answered for one statement.
pub enum Answer {
    /// It ran, taking this long (measured by the peer around its own call), with this many rows.
    Ran { ms: f64, rows: u64 },
    /// It refused, with its message.
    Refused(String),
}

impl Peers {
    /// Starts `python benches/peers/peer.py`.
    pub fn start(python: &Path) -> Result<Peers, Error> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/peer.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", python.display()))?;
        let stdin = child.stdin.take().ok_or("peer has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("peer has no stdout")?);
        Ok(Peers {
            child,
            stdin,
            stdout,
        })
    }

    fn call(&mut self, request: Value) -> Result<Value, Error> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the peer process ended".into());
        }
        Ok(serde_json::from_str(&line)?)
    }

    fn checked(&mut self, request: Value) -> Result<Value, Error> {
        let v = self.call(request)?;
        if v["ok"] != true {
            return Err(format!("peer: {}", v["error"]).into());
        }
        Ok(v)
    }

    fn answer(&mut self, request: Value) -> Result<Answer, Error> {
        let v = self.call(request)?;
        if v["ok"] == true {
            Ok(Answer::Ran {
                ms: v["ms"].as_f64().unwrap_or(f64::NAN),
                rows: v["rows"].as_u64().unwrap_or(0),
            })
        } else {
            Ok(Answer::Refused(
                v["error"].as_str().unwrap_or("").to_string(),
            ))
        }
    }

    /// Opens DuckDB over every `<table>.parquet` in `dir`; returns its version.
    pub fn duckdb_open(&mut self, dir: &Path) -> Result<String, Error> {
        let v = self.checked(json!({"op": "duckdb_open", "dir": dir}))?;
        Ok(v["version"].as_str().unwrap_or("").to_string())
    }

    /// Runs `sql` in DuckDB.
    pub fn duckdb(&mut self, sql: &str) -> Result<Answer, Error> {
        self.answer(json!({"op": "duckdb", "sql": sql}))
    }

    /// Loads `table` from `parquet` into SmartNoise SQL; returns the load time in ms.
    pub fn smartnoise_open(
        &mut self,
        table: &str,
        parquet: &Path,
        private_id: &str,
        bounds: &[(&str, f64, f64)],
        (epsilon, delta, max_ids): (f64, f64, u32),
    ) -> Result<f64, Error> {
        let bounds: serde_json::Map<String, Value> = bounds
            .iter()
            .map(|(c, lo, hi)| (c.to_string(), json!([lo, hi])))
            .collect();
        let v = self.checked(json!({
            "op": "smartnoise_open", "table": table, "parquet": parquet,
            "private_id": private_id, "bounds": bounds,
            "epsilon": epsilon, "delta": delta, "max_ids": max_ids,
        }))?;
        Ok(v["ms"].as_f64().unwrap_or(f64::NAN))
    }

    /// Runs `sql` in SmartNoise SQL.
    pub fn smartnoise(&mut self, sql: &str) -> Result<Answer, Error> {
        self.answer(json!({"op": "smartnoise", "sql": sql}))
    }

    /// The peer process's peak resident memory, MiB.
    pub fn peak_rss_mib(&mut self) -> Result<f64, Error> {
        Ok(self.checked(json!({"op": "rss"}))?["mib"]
            .as_f64()
            .unwrap_or(f64::NAN))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
