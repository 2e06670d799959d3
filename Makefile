# pgha — two commands: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build demo test test-etcd unit bench chaos fuzz lint doc crates package deb publish-check fmt clean-clusters

FAULTS ?= 250
SEED ?= 11
FUZZ_SECONDS ?= 600
# The crates that go to crates.io (the umbrella crate `pgha` and fuzz/ do not).
PUBLISHED := pgha-client pgha-admin pgha-cli pgha-testkit

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

## The main job: a pgvector workload through pgha-client on a real local Patroni cluster while the
## leader is killed (kill -9) and then switched over; prints what the application felt.
## ARGS=--async uses asynchronous replication (lost writes reported and explained).
demo: deps
	$(CARGO) run --release --example failover_demo -- $(ARGS)

## Everything: formatting, lints, unit tests and integration tests against real clusters, and a
## smoke run of the benchmark (no timing is asserted).
test: deps lint crates
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --profile ci; \
	else \
		echo "cargo-nextest not found; falling back to cargo test" >&2; \
		$(CARGO) test --workspace --lib --bins --tests --examples; \
	fi
	$(CARGO) test --workspace --doc
	$(CARGO) test --bench failover -- --quick --plot target/failover-quick.svg

## pgha-client's cluster tests again, with every client watching etcd instead of polling the
## Patroni REST APIs (PGHA_TEST_DISCOVERY=etcd; ~3 min).
test-etcd: deps
	PGHA_TEST_DISCOVERY=etcd $(CARGO) nextest run -p pgha-client --profile ci -E 'test(/^cluster::/)'

## The fast tier: every test that needs no cluster (unit, spec-table, property, recorded-fixture,
## hostile-endpoint, CLI-parsing and redaction tests) and the doctests. Starts no cluster and
## needs no installed PostgreSQL or Patroni. (`.config/nextest.toml`, profile `unit`.)
unit:
	$(CARGO) nextest run --workspace --profile unit
	$(CARGO) test --workspace --doc

## The benchmarks of BENCHMARKS.md (release build, ~15 min; add ARGS="--json" for one JSON document),
## with the failover picture drawn to target/failover.svg.
bench: deps
	$(CARGO) bench --bench failover -- --plot target/failover.svg $(ARGS)

## The long fault-injection runs of RELIABILITY.md: FAULTS faults (default 250) asynchronous from
## SEED, then synchronous (strict) from SEED+1 and SEED+2 — about 90 min each on a 2-core VM. Each
## report (JSON) and operation history (JSON lines) goes to target/chaos/, with a summary printed;
## exits non-zero if an invariant fails.
chaos: deps
	$(CARGO) build --release --example chaos
	mkdir -p target/chaos
	set -e; for run in "$(SEED) async" "$$(( $(SEED) + 1 )) sync" "$$(( $(SEED) + 2 )) sync"; do \
		set -- $$run; flag=; [ "$$2" = sync ] && flag=--synchronous; \
		target/release/examples/chaos --faults $(FAULTS) --seed $$1 $$flag \
			--history target/chaos/$$2-$$1.jsonl > target/chaos/$$2-$$1.json; \
		python3 scripts/chaos-report.py target/chaos/$$2-$$1.json; \
	done

## Every fuzz target for FUZZ_SECONDS (default 600) each, FUZZ_JOBS (default 2) at a time (cargo-fuzz on stable);
## FUZZ_TARGETS="a b" runs only those. (`make test` builds the targets and replays their seeds.)
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

lint: doc
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Each published crate packaged as crates.io would take it (metadata, README, licences, files),
## without building it (seconds).
crates:
	$(CARGO) package $(addprefix -p ,$(PUBLISHED)) --no-verify --allow-dirty

## A Debian package of `pgha` and `pgha-devcluster` (with the manual page and completions) in
## target/debian/, then installed and run on a fresh minimal Debian 12 root (debootstrap, made
## once and cached) where there is no cargo: ~5 min (release build), plus ~3 min the first time.
## `make deb` is the same.
package: deps
	set -e; deb=$$(bash scripts/build-deb.sh); bash scripts/test-deb.sh "$$deb"

deb: package

## `cargo publish --dry-run` for every published crate: packaged, then built from the package
## against the others' packages, as crates.io would build them (~5 min).
## Cargo unpacks the packages it checks into its registry cache and, the version being the same,
## would build the next check from the previous one's sources: those are removed first.
publish-check:
	rm -rf $(foreach c,$(PUBLISHED),$${CARGO_HOME:-$$HOME/.cargo}/registry/src/*/$(c)-[0-9]*)
	$(CARGO) publish --workspace --dry-run --allow-dirty

## The API docs, with broken intra-doc links and other rustdoc warnings as errors.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt:
	$(CARGO) fmt --all

## Stops and removes test clusters left behind by killed runs (by recorded PID).
clean-clusters:
	$(CARGO) run -q -p pgha-testkit --features cli --bin pgha-devcluster -- reap
