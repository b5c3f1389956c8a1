#!/usr/bin/env bash
# test.sh: everything CI checks, in one command.
#
#   scripts/test.sh [--quick] [--no-e2e] [--no-asan] [--no-fuzz]
#
#  1. build in the source tree with -Werror (autoreconf, configure, make)
#  2. make check: the unit tests
#  3. a second build with ASan+UBSan from a clean copy of the distributed
#     sources (make distdir), running the unit tests again
#  4. make distcheck (--quick skips it)
#  5. the end-to-end suite against a private stack (tests/e2e/run.sh),
#     twice side by side: on the sanitizer build with local storage, and
#     on the -Werror build with the media in S3 (E2E_STORAGE=s3: s3rver
#     behind a SigV4-verifying front, tests/s3/s3server.sh)
#
# The unit tests of the S3 backend run against such a server too
# (KD_TEST_S3_ENDPOINT), started here on a free loopback port.
#
# Ends with one line "N passed, N failed" summing every check, and exits
# non-zero when anything failed. Logs of each step go to build/test-logs/.
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0 e2e=1 asan=1
fuzz=1
for a in "$@"; do
    case $a in
    --quick) quick=1 ;;
    --no-e2e) e2e=0 ;;
    --no-asan) asan=0 ;;
    --no-fuzz) fuzz=0 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

jobs=$(nproc 2>/dev/null || echo 2)
logs=$top/build/test-logs
mkdir -p "$logs"
passed=0 failed=0
failures=()
t_start=$SECONDS

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
pass() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "not ok - $1${2:+ (see $2)}"; }

# Runs a command with its output in a log; on failure shows the log's tail.
logged() {
    local log=$1; shift
    if "$@" >"$log" 2>&1; then
        return 0
    fi
    echo "--- last lines of $log"
    tail -n 40 "$log"
    return 1
}

# Counts the results of the test programs run after the stamp file in a
# build tree. A Check program reports "Checks: N, Failures: F, Errors: E"
# and counts as N checks; any other test counts as one. A program that
# failed beyond its checks (a crash, a leak found at exit) adds one failure.
# Sets U_PASS and U_FAIL.
count_unit() {
    local builddir=$1 stamp=$2 label=$3 trs log res line n f e name
    local u_pass=0 u_fail=0 u_skip=0
    while IFS= read -r trs; do
        log=${trs%.trs}.log
        name=${trs#"$builddir"/}
        name=${name%.trs}
        res=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
        line=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null | tail -n 1)
        n=0 f=0 e=0
        if [[ -n $line ]]; then
            read -r n f e < <(echo "$line" | sed -E 's/Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+)/\1 \2 \3/')
        fi
        case $res in
        PASS|XFAIL)
            if [[ -n $line ]]; then u_pass=$((u_pass + n)); else u_pass=$((u_pass + 1)); fi ;;
        SKIP)
            u_skip=$((u_skip + 1))
            # In CI every server a test needs is installed: a skip there
            # means a test that silently stopped testing.
            if [[ -n ${CI:-} ]]; then
                u_fail=$((u_fail + 1))
                failures+=("$label: $name (skipped in CI)")
                echo "--- $name: skipped in CI; from $log:"
                tail -n 5 "$log"
            fi
            ;;
        *)
            u_pass=$((u_pass + n - f - e))
            u_fail=$((u_fail + f + e))
            [[ $((f + e)) -gt 0 ]] || u_fail=$((u_fail + 1))
            failures+=("$label: $name ($res)")
            echo "--- $name: $res; from $log:"
            { grep -E ':[EF]:|ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" || tail -n 20 "$log"; } | head -n 15
            ;;
        esac
    done < <(find "$builddir" -name '*.trs' -newer "$stamp" | sort)
    echo "$label: $u_pass passed, $u_fail failed$( ((u_skip == 0)) || echo ", $u_skip skipped")"
    passed=$((passed + u_pass))
    failed=$((failed + u_fail))
    U_PASS=$u_pass U_FAIL=$u_fail
}

# unit_step LABEL BUILDDIR STAMP RC LOG: counts a make check run and adds a
# failure when make failed outside the tests (a test program that does not
# build) or when no test ran at all.
unit_step() {
    local label=$1 builddir=$2 stamp=$3 rc=$4 log=$5
    count_unit "$builddir" "$stamp" "$label"
    if [[ $rc -ne 0 && $U_FAIL -eq 0 ]]; then
        fail "$label: make check failed outside the tests" "$log"
        { grep -E 'error:|Error [0-9]+' "$log" || tail -n 20 "$log"; } | head -n 15
    elif [[ $((U_PASS + U_FAIL)) -eq 0 ]]; then
        fail "$label ran no test" "$log"
    fi
}

cd "$top" || exit 1

# The S3 server of the unit tests (tests/unit/storage_s3_test), on a free
# loopback port; without it that test is skipped, and counted so.
s3_dir=$top/build/test-s3
s3_up=0
s3_start() {
    local i p
    for ((i = 0; i < 50; i++)); do
        p=$((41000 + (RANDOM % 9000) * 2))
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null && break
    done
    rm -rf "$s3_dir"
    if "$top/tests/s3/s3server.sh" start "$s3_dir" "$p" kadr >"$logs/s3server.log" 2>&1; then
        export KD_TEST_S3_ENDPOINT=http://127.0.0.1:$p
        s3_up=1
    else
        fail "the S3 test server starts" "$logs/s3server.log"
    fi
}
s3_stop() { [[ $s3_up -eq 0 ]] || "$top/tests/s3/s3server.sh" stop "$s3_dir"; s3_up=0; }
trap s3_stop EXIT
# The AWS SigV4 suite (tests/unit/sigv4_test) from shared/, for the builds
# made from a copy of the sources too.
[[ ! -d $top/../shared/vectors/sigv4 ]] || export KD_SIGV4_VECTORS=$top/../shared/vectors/sigv4

# 1. The -Werror build, in the tree.
step "build with -Werror"
built=0
if logged "$logs/autoreconf.log" autoreconf -fi &&
    logged "$logs/configure.log" ./configure --enable-werror &&
    logged "$logs/make.log" make -j"$jobs"; then
    pass "build (-Werror)"
    built=1
else
    fail "build (-Werror)" "$logs/make.log"
fi

# 2. Unit tests.
if [[ $built -eq 1 ]]; then
    step "unit tests"
    s3_start
    touch "$logs/unit.stamp"
    make -j"$jobs" check >"$logs/check.log" 2>&1
    rc=$?
    unit_step "unit" "$top" "$logs/unit.stamp" "$rc" "$logs/check.log"
fi

# 3. ASan + UBSan, from the distributed sources.
if [[ $asan -eq 1 && $built -eq 1 ]]; then
    step "unit tests under ASan+UBSan"
    asan_dir=$top/build/asan
    rm -rf "$asan_dir"
    mkdir -p "$asan_dir"
    if logged "$logs/asan-distdir.log" make distdir distdir="$asan_dir/src" &&
        (cd "$asan_dir/src" && logged "$logs/asan-configure.log" \
            ./configure --enable-werror --enable-sanitizers) &&
        logged "$logs/asan-make.log" make -C "$asan_dir/src" -j"$jobs"; then
        pass "build (ASan+UBSan)"
        touch "$logs/asan.stamp"
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            make -C "$asan_dir/src" -j"$jobs" check >"$logs/asan-check.log" 2>&1
        rc=$?
        unit_step "unit (ASan+UBSan)" "$asan_dir/src" "$logs/asan.stamp" "$rc" "$logs/asan-check.log"
    else
        fail "build (ASan+UBSan)" "$logs"
    fi
fi

# 3b. The parsers under libFuzzer with ASan+UBSan (tests/fuzz/run.sh): job
# spec, HTTP request parsing, JWT, presigned URLs, each from its seed corpus
# in tests/fuzz/corpus/ for FUZZ_SECONDS (20) seconds; a crash, leak or
# sanitizer report fails its harness. --no-fuzz skips it.
if [[ $fuzz -eq 1 ]]; then
    step "fuzzing (${FUZZ_SECONDS:-20}s per harness)"
    "$top/tests/fuzz/run.sh" --seconds "${FUZZ_SECONDS:-20}" --build-dir "$top/build/fuzz" \
        2>&1 | tee "$logs/fuzz.log"
    fz_pass=$(grep -c '^ok - fuzz' "$logs/fuzz.log")
    passed=$((passed + fz_pass))
    while IFS= read -r l; do
        failed=$((failed + 1))
        failures+=("${l#not ok - }")
    done < <(grep '^not ok - fuzz' "$logs/fuzz.log")
    grep -q '^fuzz: ' "$logs/fuzz.log" || fail "fuzz: the runner did not finish" "$logs/fuzz.log"
fi

# 4. The release tarball builds and passes its tests on its own.
if [[ $quick -eq 0 && $built -eq 1 ]]; then
    step "make distcheck"
    if logged "$logs/distcheck.log" make -j"$jobs" distcheck; then
        pass "distcheck"
    else
        fail "distcheck" "$logs/distcheck.log"
    fi
fi

# 5. End to end against private stacks.
# e2e_suite LABEL BINDIR LOG: one run of the suite, its output in LOG only.
e2e_suite() {
    KADR_BIN_DIR=$2 E2E_LOG_DIR=$logs/$1-stack-logs \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$top/tests/e2e/run.sh" >"$3" 2>&1
}

# e2e_count LABEL LOG: adds a finished run's results to the totals.
e2e_count() {
    local label=$1 log=$2 line p f l
    line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [[ -z $line ]]; then
        fail "$label suite did not finish" "$log"
        return
    fi
    read -r p f < <(echo "$line" | sed -E 's/^e2e: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/')
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r l; do failures+=("$label: ${l#not ok - }"); done < <(grep '^not ok - ' "$log")
    [[ $((p + f)) -gt 0 ]] || fail "$label ran no test"
}

# Two runs side by side, each on its own stack and ports: the local-disk
# run on the sanitizer build (memory errors, leaks and undefined behaviour
# on real request and job paths show in the programs' logs, which run.sh
# checks) and the S3 run on the -Werror build, so that each build and each
# storage backend goes through every case. Most of a run is waiting (for
# leases, restarts, retries): together they take little longer than the
# slower one alone. Without the sanitizer build (--no-asan), the -Werror
# build runs both.
if [[ $e2e -eq 1 ]]; then
    pids=() ran=()
    local_bin=$top local_label=e2e
    if [[ $asan -eq 1 && -x ${asan_dir:-/nonexistent}/src/fcgi/kadr-api ]]; then
        local_bin=$asan_dir/src local_label=e2e-asan
    fi
    if [[ $built -eq 1 ]]; then
        step "end-to-end tests: local storage ($local_label) and S3 (e2e-s3), side by side"
        e2e_suite "$local_label" "$local_bin" "$logs/$local_label.log" &
        pids+=($!) ran+=("$local_label")
        E2E_STORAGE=s3 e2e_suite e2e-s3 "$top" "$logs/e2e-s3.log" &
        pids+=($!) ran+=(e2e-s3)
        wait "${pids[@]}"
    else
        fail "e2e (no build)"
    fi
    for l in "${ran[@]}"; do
        printf '\n== %s (%s)\n' "$l" "$(date -u +%H:%M:%S)"
        cat "$logs/$l.log"
        e2e_count "$l" "$logs/$l.log"
    done
fi

printf '\n== summary (%ss)\n' "$((SECONDS - t_start))"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
