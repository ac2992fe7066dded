#!/usr/bin/env bash
# Fuzzes the host's parsers of what the guest sends (Sources/MachineFuzz) with libFuzzer, each
# target for SECONDS (default 10), starting from the seeds in Tests/FuzzCorpus/TARGET.
#   scripts/fuzz.sh                 every target, 10 s each (the test suite runs this)
#   scripts/fuzz.sh 600 dns events  longer, by hand
# Targets run side by side, one a core (FUZZ_JOBS=N to choose).
# A crash, a hang (10 s on one input) or more than 512 MiB resident fails the run; the input is
# kept in .build-fuzz/crashes/ and the command that replays it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
build=.build-fuzz
echo "==> building machine-fuzz with -sanitize=fuzzer ($build)"
swift build --build-path "$build" --product machine-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING 2>&1 \
    | { grep -E 'error:' || true; }
fuzzer="$build/debug/machine-fuzz"
if [ $# -gt 0 ]; then targets=("$@"); else targets=($(ls Tests/FuzzCorpus)); fi
mkdir -p "$build/crashes"

# One target: its line of results in $build/TARGET.result, its status as the function's.
fuzz_target() {
    local target=$1 log="$build/$1.log"
    # New inputs go to the first folder (kept between runs); the seeds are only read.
    mkdir -p "$build/corpus/$target"
    # Swift's own crash handler is turned off so that libFuzzer's catches the trap and saves the input.
    if (MACHINE_FUZZ_TARGET="$target" SWIFT_BACKTRACE=enable=no exec "$fuzzer" "$build/corpus/$target" "Tests/FuzzCorpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=512 -max_len=16384 \
        -artifact_prefix="$build/crashes/$target-" -print_final_stats=1) >"$log" 2>&1; then
        local runs rss cov
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
        echo "fuzz $target: ${runs:-?} inputs in ${seconds} s, $cov, peak ${rss:-?} MiB, no failure" >"$build/$target.result"
    else
        local artifact
        artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -1)
        {
            echo "fuzz $target: FAILED"
            grep -vE '^0x[0-9a-f]+' "$log" | grep -E 'Fatal error|ERROR|SUMMARY|Test unit written|deadly signal|timeout|out-of-memory' | head -10
            echo "  replay: swift build --product machine-fuzz && .build/debug/machine-fuzz $target ${artifact:-FILE}   (log: $log)"
        } >"$build/$target.result"
        return 1
    fi
}

for target in "${targets[@]}"; do
    [ -d "Tests/FuzzCorpus/$target" ] || { echo "no target $target (targets: $(ls Tests/FuzzCorpus | xargs))"; exit 2; }
done
# Each fuzzer is one thread: as many at once as there are cores, so a run of every target takes
# its seconds times the targets over the cores (the test suite's machines are not up yet).
jobs=${FUZZ_JOBS:-$(nproc)}
failed=0
pids=()
for target in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    fuzz_target "$target" &
    pids+=($!)
done
for i in "${!targets[@]}"; do
    wait "${pids[$i]}" || failed=1
    cat "$build/${targets[$i]}.result"
done
exit $failed
