# erhai — the two commands that matter are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test lint fmt bench bench-tpch bench-peers build

## Run the whole flow on generated Dali data in a throwaway deployment.
demo:
	$(CARGO) run --quiet -p erhai-devkit --bin erhai-demo

## Unit tests, .slt policy cases, end-to-end tests over real TLS, each bench run once, and the
## engine's compile_fail examples (code outside the engine cannot reach unchecked data).
test:
	$(CARGO) test --workspace --all-targets --no-fail-fast
	$(CARGO) test --doc -p erhai-engine

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Criterion benches; figures go to docs/BENCHMARKS.md.
bench:
	$(CARGO) bench --bench policy_check --bench query_roundtrip

## TPC-H through erhai (and with encryption off) vs plain DataFusion over plain Parquet
## (SF=1 for the full run); the tables go into docs/BENCHMARKS.md.
SF ?= 0.1
RUNS ?= 5
bench-tpch:
	$(CARGO) run --release --features bench-plaintext --example tpch_bench -- \
		--sf $(SF) --runs $(RUNS) --docs docs/BENCHMARKS.md

## The same side by side with DuckDB and SmartNoise SQL (a Python venv from PyPI, made here),
## plus masking, registration throughput and the engine's peak memory. Measurements, not tests.
PEERS_VENV ?= target/peers-venv
$(PEERS_VENV)/.installed: benches/peers/requirements.txt
	python3 -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet -r benches/peers/requirements.txt
	touch $@

bench-peers: $(PEERS_VENV)/.installed
	$(CARGO) run --release --features bench-plaintext --example tpch_bench -- \
		--sf $(SF) --runs $(RUNS) --peers $(PEERS_VENV)/bin/python --docs docs/BENCHMARKS.md

build:
	$(CARGO) build --bin erhai
