"""The peers of `make bench-peers`, driven by examples/tpch_bench.rs over stdin/stdout.

One JSON request per line, one JSON answer per line, so that the Rust harness can interleave
erhai, plain DataFusion and the peers query by query in one run. Times are measured here,
around the peer's own call, and returned in milliseconds.

Requests:
  {"op": "duckdb_open", "dir": D}                  DuckDB views over D/<table>.parquet
  {"op": "duckdb", "sql": S}                       run S in DuckDB, fetch every row
  {"op": "smartnoise_open", "parquet": F, "epsilon": e, "delta": d, "max_ids": m,
   "bounds": {column: [lo, hi]}, "private_id": c}  load F into SmartNoise SQL (pandas reader)
  {"op": "smartnoise", "sql": S}                   run S in SmartNoise SQL
  {"op": "rss"}                                    this process's peak resident memory (MiB)
"""

import json
import resource
import sys
import time

state = {}


def answer(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def duckdb_open(req):
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    import os

    for f in sorted(os.listdir(req["dir"])):
        if f.endswith(".parquet"):
            path = os.path.join(req["dir"], f).replace("'", "''")
            con.execute(f"CREATE VIEW {f[:-8]} AS SELECT * FROM read_parquet('{path}')")
    state["duckdb"] = con
    answer(ok=True, version=duckdb.__version__)


def duckdb_run(req):
    con = state["duckdb"]
    t = time.perf_counter()
    rows = con.execute(req["sql"]).fetchall()
    ms = (time.perf_counter() - t) * 1e3
    answer(ok=True, ms=ms, rows=len(rows))


def smartnoise_open(req):
    import pandas as pd
    import pyarrow.parquet as pq
    import snsql
    from snsql import Privacy

    t = time.perf_counter()
    df = pq.read_table(req["parquet"]).to_pandas()
    columns = {}
    for name, dtype in df.dtypes.items():
        if name == req["private_id"]:
            columns[name] = {"type": "int", "private_id": True}
        elif name in req["bounds"]:
            lo, hi = req["bounds"][name]
            df[name] = df[name].astype(float)
            columns[name] = {"type": "float", "lower": lo, "upper": hi}
        elif str(dtype).startswith("int"):
            columns[name] = {"type": "int"}
        elif "date" in name or "datetime" in str(dtype):
            df[name] = pd.to_datetime(df[name])
            columns[name] = {"type": "datetime"}
        else:
            df[name] = df[name].astype(str)
            columns[name] = {"type": "string"}
    table = {"max_ids": req["max_ids"], "row_privacy": False, "sample_max_ids": True}
    table.update(columns)
    meta = {"": {"tpch": {req["table"]: table}}}
    privacy = Privacy(epsilon=req["epsilon"], delta=req["delta"])
    state["smartnoise"] = snsql.from_df(df, privacy=privacy, metadata=meta)
    ms = (time.perf_counter() - t) * 1e3
    answer(ok=True, ms=ms, rows=len(df), version=snsql.__version__ if hasattr(snsql, "__version__") else "")


def smartnoise_run(req):
    reader = state["smartnoise"]
    t = time.perf_counter()
    try:
        rows = reader.execute(req["sql"])
    except Exception as e:  # a refusal is a result: report it
        answer(ok=False, error=f"{type(e).__name__}: {e}"[:300])
        return
    ms = (time.perf_counter() - t) * 1e3
    answer(ok=True, ms=ms, rows=max(len(rows) - 1, 0))


OPS = {
    "duckdb_open": duckdb_open,
    "duckdb": duckdb_run,
    "smartnoise_open": smartnoise_open,
    "smartnoise": smartnoise_run,
    "rss": lambda req: answer(ok=True, mib=peak_rss_mib()),
}

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        req = json.loads(line)
        OPS[req["op"]](req)
    except Exception as e:
        answer(ok=False, error=f"{type(e).__name__}: {e}"[:300])
