#!/usr/bin/env bash
# deps.sh: the Debian 12 packages kadr needs, in one place.
#
#   scripts/deps.sh [--stack] list       print the package names, one a line
#   scripts/deps.sh [--stack] missing    print only those not installed
#   scripts/deps.sh [--stack] install    apt-get install the missing ones (root)
#
# --stack narrows it to what building and running the stack needs
# (scripts/quickstart.sh); without it, everything, tests and benchmarks
# included (.ci/run). One list, so the two never drift apart.
set -euo pipefail

# Building: the toolchain, autotools and every library configure.ac asks for.
BUILD_PKGS=(
    build-essential autoconf automake pkg-config
    libfcgi-dev libpq-dev libhiredis-dev libjansson-dev libssl-dev libseccomp-dev
    libcurl4-openssl-dev libxml2-dev
    libavformat-dev libavcodec-dev libavfilter-dev libavutil-dev
    libswscale-dev libswresample-dev
)
# Running the local stack (scripts/stack.sh) and the quickstart's walk
# through the API (curl, jq; ffmpeg makes the sample and describes the
# result).
RUN_PKGS=(
    postgresql-15 redis-server nginx spawn-fcgi
    fonts-dejavu-core openssl ca-certificates
    util-linux procps curl jq ffmpeg
)
# The tests: Check (unit tests), systemd (systemd-analyze verify of the
# units in init/systemd), clang and its runtime (the libFuzzer
# harnesses of tests/fuzz/run.sh), python3 (the webhook receiver of
# tests/e2e), and for the S3 backend's tests s3rver from npm behind a
# SigV4-verifying front in Node (tests/s3/s3server.sh) with the AWS CLI as an
# independent client of the store. npm comes with this machine's nodejs
# package; on a Debian whose nodejs lacks it, add the package npm.
TEST_PKGS=(check clang-14 libclang-rt-14-dev python3 nodejs awscli systemd)
# Benchmarks only (scripts/bench-api.sh; bench/jobs.sh's Celery comparison).
BENCH_PKGS=(wrk python3-celery python3-redis python3-av)

stack_only=0
if [[ ${1:-} == --stack ]]; then
    stack_only=1
    shift
fi

all_pkgs() {
    if [[ $stack_only -eq 1 ]]; then
        printf '%s\n' "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"
    else
        printf '%s\n' "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}"
    fi
}

missing_pkgs() {
    local p status
    while read -r p; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        [[ $status == ii* ]] || printf '%s\n' "$p"
    done < <(all_pkgs)
}

cmd=${1:-list}
case $cmd in
list)
    all_pkgs
    ;;
missing)
    missing_pkgs
    ;;
install)
    mapfile -t need < <(missing_pkgs)
    if [[ ${#need[@]} -eq 0 ]]; then
        echo "deps: all $(all_pkgs | wc -l) packages present"
        exit 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "deps: missing packages (run as root to install): ${need[*]}" >&2
        exit 1
    fi
    echo "deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The lists may be stale or absent on a fresh machine.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
    ;;
*)
    echo "usage: $0 [--stack] list|missing|install" >&2
    exit 2
    ;;
esac
