# erhai — the two commands that matter are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test lint fmt bench bench-tpch build

## Run the whole flow on generated Dali data in a throwaway deployment.
demo:
	$(CARGO) run --quiet --bin erhai -- demo

## Unit tests, .slt policy cases, end-to-end tests over real TLS, and each bench run once.
test:
	$(CARGO) test --workspace --all-targets --no-fail-fast

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Criterion benches; figures go to docs/BENCHMARKS.md.
bench:
	$(CARGO) bench --bench policy_check --bench query_roundtrip

## TPC-H through erhai vs plain DataFusion over plain Parquet (SF=1 for the full run).
SF ?= 0.1
RUNS ?= 5
bench-tpch:
	$(CARGO) run --release --example tpch_bench -- --sf $(SF) --runs $(RUNS)

build:
	$(CARGO) build --bin erhai
