#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short fixed time and fails on a
# crash (issue 13). With cargo-fuzz and a nightly toolchain it runs
# libFuzzer, FUZZ_SECONDS (default 20) per target, from a scratch copy of
# the seed corpus in fuzz/corpus/<target> (the repo's corpus is never
# written to); a crash leaves its input under fuzz/artifacts/<target>/.
# Without them it says so and runs the stable replay instead: the same
# entry points over the corpus and a bounded random loop (cargo test).
#
#   scripts/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=60 scripts/fuzz.sh dsn pack
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi

if cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly fuzz build
    for t in "${targets[@]}"; do
        scratch="target/fuzz-corpus/$t"
        mkdir -p "$scratch"
        echo "== $t: ${seconds}s"
        cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
            -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    done
    echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
else
    echo "fuzz: cargo-fuzz or a nightly toolchain is missing;" \
        "running the stable replay of the corpus and random mutations instead (not coverage-guided)" >&2
    FASTEN_FUZZ_ITERATIONS="${FASTEN_FUZZ_ITERATIONS:-20000}" cargo test --release -- --nocapture
fi
