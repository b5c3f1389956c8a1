#!/usr/bin/env bash
# run.sh: builds the libFuzzer harnesses with clang (ASan + UBSan) and runs
# each for a bounded time from its committed seed corpus.
#
#   tests/fuzz/run.sh [--seconds N] [--build-dir DIR] [NAME...]
#
# NAME: jobspec, http, jwt, presign (default all). Each harness is built
# from its tests/fuzz/<name>_fuzz.c and the core sources (src/*.c except the
# media modules, plus kadr-api's fcgi/*.c except main.c: the request parser,
# the router and the handlers it links), all instrumented. Each runs 20 s by
# default, as many at once as there are cores (FUZZ_JOBS), so that the
# four take under a minute on two cores. The seed corpus is
# tests/fuzz/corpus/<name>/ (read only); what the fuzzer finds goes to a
# scratch corpus in the build directory. Prints "ok - fuzz NAME" or
# "not ok - fuzz NAME" per harness and "fuzz: N passed, N failed"; any
# crash, leak, sanitizer report or build failure fails its harness. A crash
# input is kept as BUILD/NAME/crash-* (reproduce: BUILD/NAME_fuzz FILE).
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=20
build=$top/build/fuzz
names=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) seconds=${2:?}; shift 2 ;;
    --build-dir) build=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) names+=("$1"); shift ;;
    esac
done
[[ ${#names[@]} -gt 0 ]] || names=(jobspec http jwt presign)

cc=${FUZZ_CC:-$(command -v clang-14 || command -v clang || true)}
if [[ -z $cc ]]; then
    echo "not ok - fuzz: clang not found (apt-get install clang-14 libclang-rt-14-dev)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
mkdir -p "$build"
# Harnesses run side by side, as many at once as there are cores: each
# still gets its own core for its whole time.
par=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
libs=$(pkg-config --libs jansson openssl libpq hiredis libcurl libxml-2.0 2>/dev/null)
incs=$(pkg-config --cflags jansson openssl libpq hiredis libcurl libxml-2.0 2>/dev/null)
cflags=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
    -I"$top/src" -I"$top/fcgi" -DKD_SYSCONFDIR='"/etc"' -DKD_PKGDATADIR='"/usr/share/kadr"'
    -DPACKAGE_VERSION='"fuzz"')

# The core objects, once for all harnesses (rebuilt when a source changed),
# compiled side by side.
objs=()
build_core() {
    local f o pids=() rc=0 p
    mkdir -p "$build/obj"
    for f in "$top"/src/*.c "$top"/fcgi/*.c; do
        case $f in */src/media*|*/fcgi/main.c) continue ;; esac
        o=$build/obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o
        if [[ ! -f $o || $f -nt $o ]]; then
            # shellcheck disable=SC2086
            "$cc" "${cflags[@]}" $incs -c "$f" -o "$o" 2>>"$build/build.log" &
            pids+=($!)
            if ((${#pids[@]} >= par)); then wait "${pids[0]}" || rc=1; pids=("${pids[@]:1}"); fi
        fi
        objs+=("$o")
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return $rc
}
passed=0 failed=0
if ! build_core; then
    echo "not ok - fuzz: the core sources do not build with clang (see $build/build.log)"
    tail -n 20 "$build/build.log"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

# run_one NAME: fuzzes one built harness; its verdict goes to $build/NAME.verdict.
run_one() {
    local name=$1 bin=$build/${1}_fuzz work=$build/$1 seeds=$top/tests/fuzz/corpus/$1 execs
    rm -rf "$work"
    mkdir -p "$work/corpus"
    # -rss_limit_mb: the sanitizers' shadow memory counts; -timeout: one input.
    if (cd "$work" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$work/corpus" "$seeds") >"$build/$name.log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$name.log" | tail -n 1)
        echo "ok - fuzz $name (${execs:-?} inputs in ${seconds}s)"
    else
        echo "not ok - fuzz $name (see $build/$name.log)"
        grep -E 'ERROR: |runtime error:|SUMMARY:|Test unit written' "$build/$name.log" | head -n 8 | sed 's/^/#   /'
    fi >"$build/$name.verdict"
}
built=()
for name in "${names[@]}"; do
    src=$top/tests/fuzz/${name}_fuzz.c
    bin=$build/${name}_fuzz
    if [[ ! -f $src ]]; then
        echo "not ok - fuzz $name: no $src"
        failed=$((failed + 1))
        continue
    fi
    # shellcheck disable=SC2086
    if ! "$cc" "${cflags[@]}" -fsanitize=fuzzer $incs "$src" "${objs[@]}" $libs -lfcgi -lm \
        -o "$bin" >"$build/$name-build.log" 2>&1; then
        echo "not ok - fuzz $name: does not build"
        tail -n 20 "$build/$name-build.log" | sed 's/^/#   /'
        failed=$((failed + 1))
        continue
    fi
    built+=("$name")
done
pids=()
for name in "${built[@]}"; do
    rm -f "$build/$name.verdict"
    run_one "$name" &
    pids+=($!)
    if ((${#pids[@]} >= par)); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
[[ ${#pids[@]} -eq 0 ]] || wait "${pids[@]}"
for name in "${built[@]}"; do
    if [[ -f $build/$name.verdict ]] && grep -q '^ok - ' "$build/$name.verdict"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        [[ -s $build/$name.verdict ]] || echo "not ok - fuzz $name: no verdict"
    fi
    cat "$build/$name.verdict" 2>/dev/null
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
