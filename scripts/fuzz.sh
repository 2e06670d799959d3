#!/usr/bin/env bash
# Runs every fuzz target (or those named after the seconds) for $1 seconds each (default 60),
# FUZZ_JOBS at a time (default 2: this machine has 2 cores), starting from the committed seeds and
# regressions.
# Installs cargo-fuzz if needed. Works on stable Rust: the targets are built without a sanitizer
# (`-s none`); libFuzzer's coverage guidance still applies. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes this script fail; fixed, that input goes to
# fuzz/regressions/<target>/, which `make test` replays.
set -euo pipefail
seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -s none
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
run() {
    local t="$1"
    mkdir -p "corpus/$t" "seeds/$t" "regressions/$t"
    cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 > "corpus/$t.log" 2>&1
    echo "$t: $(grep -E '^Done' "corpus/$t.log") $(grep -E '^stat::number_of_executed_units' "corpus/$t.log")"
}
status=0
jobs="${FUZZ_JOBS:-2}"
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
    pids=()
    for t in "${targets[@]:i:jobs}"; do run "$t" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || status=1; done
done
if [ "$status" -ne 0 ]; then
    echo "a fuzz target failed: see fuzz/corpus/<target>.log and fuzz/artifacts/" >&2
fi
exit "$status"
