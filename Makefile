# erhai — the two commands that matter are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test lint fmt bench build

## Run the whole flow on generated Dali data in a throwaway deployment.
demo:
	$(CARGO) run --quiet --bin erhai -- demo

## Unit tests, .slt policy cases and end-to-end tests over real TLS; benches must compile.
test:
	$(CARGO) test --workspace --no-fail-fast
	$(CARGO) build --benches --quiet

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Criterion benches; figures go to docs/BENCHMARKS.md.
bench:
	$(CARGO) bench --bench policy_check --bench query_roundtrip

build:
	$(CARGO) build --bin erhai
