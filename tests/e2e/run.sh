#!/usr/bin/env bash
# run.sh: the end-to-end suite against a private stack.
#
#   tests/e2e/run.sh [NAME...]      (NAME: t_upload, upload, ... ; default all)
#
# Starts a stack with scripts/stack.sh in a fresh temporary directory on a
# free port base of its own (so it never meets a running quickstart), makes
# the sample media with ffmpeg, runs every tests/e2e/t_*.sh, stops the stack
# and prints "e2e: N passed, N failed". E2E_KEEP=1 keeps the stack running
# and the directory for a look afterwards; E2E_LOG_DIR=DIR copies the
# stack's logs there. The kadr programs come from the build tree or
# KADR_BIN_DIR, as for stack.sh.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
stack=$top/scripts/stack.sh

E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kadr-e2e.XXXXXX")
# The stack's run user must reach the stack directory inside.
chmod 0755 "$E2E_TMP"
stack_dir=$E2E_TMP/stack
started=0

cleanup() {
    if [[ ${s3_started:-0} -eq 1 && ${E2E_KEEP:-0} != 1 ]]; then
        "$top/tests/s3/s3server.sh" stop "$E2E_TMP/s3" || true
    fi
    if [[ $started -eq 1 && ${E2E_KEEP:-0} != 1 ]]; then
        "$stack" stop --dir "$stack_dir" >"$E2E_TMP/stop.log" 2>&1 ||
            { echo "e2e: stopping the stack failed:"; cat "$E2E_TMP/stop.log"; }
    fi
    if [[ ${E2E_KEEP:-0} == 1 ]]; then
        echo "e2e: kept $E2E_TMP (stop with: $stack stop --dir $stack_dir)"
    else
        rm -rf "$E2E_TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port base whose http and https ports are free.
pick_port_base() {
    local i base
    for ((i = 0; i < 50; i++)); do
        base=$((20000 + (RANDOM % 9000) * 4))
        port_free "$base" && port_free $((base + 1)) && { echo "$base"; return 0; }
    done
    return 1
}

bail() {
    echo "not ok - $1"
    [[ -f ${2:-} ]] && sed 's/^/#   /' "$2" | tail -n 40
    echo "e2e: 0 passed, 1 failed"
    exit 1
}

port_base=$(pick_port_base) || bail "no free port base"
echo "e2e: stack in $stack_dir on port base $port_base"
# Deliveries of a dead worker are reclaimed after 3 s instead of a minute,
# so that t_crash.sh sees the takeover in time (the job's lease still
# holds it for its own minimum). local.conf survives restarts of the stack.
mkdir -p "$stack_dir"
echo "queue_claim_idle_ms = 3000" >"$stack_dir/local.conf"
# Plans (doc/security.md): the suite's users (kadrctl, plan free) never meet
# a limit; t_security_limits.sh meets the premium plan's small ones exactly.
printf '%s\n' 'plan_free_jobs_per_hour = 100000' 'jobs_per_hour_cap = 100000' \
    'plan_free_uploads = 100000' 'plan_premium_jobs_per_hour = 3' 'plan_premium_uploads = 2' \
    'plan_premium_storage_bytes = 1000000' >>"$stack_dir/local.conf"
# An upload limit in a size form and off the default: nginx must take its
# body limits from the effective configuration (t_upload.sh).
echo "upload_max_bytes = 3G" >>"$stack_dir/local.conf"
# A job's lease lasts 5 s past each heartbeat (not 30 s): a job of a killed
# worker is taken over soon (t_crash.sh, t_fault_*.sh).
echo "job_lease_ms = 5000" >>"$stack_dir/local.conf"
# Download URLs expire after 15 s (not 15 min), so that a case can use one
# after its expiry (t_s3_upload.sh); every case uses its URLs at once.
echo "download_url_ttl_s = 15" >>"$stack_dir/local.conf"
# Webhook retries 100 times sooner than in production (0.1 s, 0.3 s, ...),
# and the receivers of t_webhooks.sh listen on loopback.
printf 'notify_backoff_base_ms = 100\nnotify_allow_private = 1\n' >>"$stack_dir/local.conf"
# E2E_STORAGE=s3: the same suite with the media in S3: s3rver behind a
# SigV4-verifying proxy (tests/s3/s3server.sh) on a free loopback port.
if [[ ${E2E_STORAGE:-local} == s3 ]]; then
    for ((i = 0; i < 50; i++)); do
        s3_port=$((40000 + (RANDOM % 10000) * 2))
        port_free "$s3_port" && port_free $((s3_port + 1)) && break
    done
    "$top/tests/s3/s3server.sh" start "$E2E_TMP/s3" "$s3_port" kadr >"$E2E_TMP/s3.log" 2>&1 ||
        bail "the S3 server starts" "$E2E_TMP/s3.log"
    s3_started=1
    printf '%s\n' 'storage_backend = s3' "s3_endpoint = http://127.0.0.1:$s3_port" \
        's3_bucket = kadr' 's3_access_key = S3RVER' 's3_secret_key = S3RVER' \
        's3_part_size = 5M' 's3_multipart_threshold = 5M' 's3_retries = 6' >>"$stack_dir/local.conf"
    export E2E_STORAGE=s3 E2E_S3_ENDPOINT=http://127.0.0.1:$s3_port E2E_S3_DATA=$E2E_TMP/s3/data
    echo "e2e: media in S3 at $E2E_S3_ENDPOINT"
fi
# nginx's per-address API rate at 50 r/s, burst 50, so that
# t_security_nginx.sh can exceed it from its own address on any machine;
# the suite's client (127.0.0.1) is exempt (scripts/stack.sh).
export KADR_STACK_API_RATE=${KADR_STACK_API_RATE:-50r/s} KADR_STACK_API_BURST=${KADR_STACK_API_BURST:-50}
if ! "$stack" start --dir "$stack_dir" --port-base "$port_base" --api-procs 2 --workers 1 \
    >"$E2E_TMP/start.log" 2>&1; then
    started=1
    for f in "$stack_dir"/logs/{api,worker,migrate}.log; do
        [[ -f $f ]] && { echo "--- $f"; tail -n 20 "$f"; } >>"$E2E_TMP/start.log"
    done
    bail "the stack starts" "$E2E_TMP/start.log"
fi
started=1
while IFS='=' read -r k v; do
    export "$k=$v"
done < <("$stack" env --dir "$stack_dir")
export E2E_TMP E2E_DATA=$here/data E2E_MEDIA=$E2E_TMP/media E2E_TOP=$top

# The sample media, made here rather than shipped.
mkdir -p "$E2E_MEDIA"
if ! ffmpeg -nostdin -hide_banner -loglevel error \
    -f lavfi -i testsrc2=size=640x360:rate=25:duration=5 \
    -f lavfi -i sine=frequency=440:sample_rate=48000:duration=5 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 25 -c:a aac -b:a 96k -shortest \
    -movflags +faststart "$E2E_MEDIA/sample.mp4" 2>"$E2E_TMP/ffmpeg.log"; then
    bail "ffmpeg makes the sample media" "$E2E_TMP/ffmpeg.log"
fi
# Looks like an MP4 (a real header) and is garbage after it.
{ head -c 4096 "$E2E_MEDIA/sample.mp4"; head -c 300000 /dev/urandom; } >"$E2E_MEDIA/corrupt.mp4"
head -c 65536 /dev/urandom >"$E2E_MEDIA/noise.bin"
# A sound header (the index is at the front: faststart) over damaged frames.
cp "$E2E_MEDIA/sample.mp4" "$E2E_MEDIA/damaged.mp4"
size=$(stat -c %s "$E2E_MEDIA/sample.mp4")
head -c $((size / 2)) /dev/urandom |
    dd of="$E2E_MEDIA/damaged.mp4" bs=1 seek=$((size / 3)) conv=notrunc status=none

# Which cases.
cases=()
if [[ $# -gt 0 ]]; then
    for n in "$@"; do
        n=${n%.sh}
        n=t_${n#t_}
        [[ -f $here/$n.sh ]] || bail "no case file $n.sh"
        cases+=("$here/$n.sh")
    done
else
    for f in "$here"/t_*.sh; do cases+=("$f"); done
fi

ok=0 notok=0
t0=$SECONDS
for f in "${cases[@]}"; do
    name=$(basename "$f" .sh)
    echo "# $name"
    out=$E2E_TMP/$name.out
    t1=$SECONDS
    (cd "$here" && timeout 900 bash "$f") >"$out" 2>&1
    rc=$?
    cat "$out"
    o=$(grep -c '^ok - ' "$out")
    n=$(grep -c '^not ok - ' "$out")
    if [[ $rc -ne 0 && $n -eq 0 ]]; then
        echo "not ok - $name finished with status $rc"
        n=$((n + 1))
    fi
    if [[ $((o + n)) -eq 0 ]]; then
        echo "not ok - $name ran no case"
        n=1
    fi
    ok=$((ok + o))
    notok=$((notok + n))
    echo "# $name: $o ok, $n not ok, $((SECONDS - t1))s"
done

# Every process of the stack outlived the suite: spawn-fcgi restarts
# nothing, so a crashed API process would show here.
if "$stack" status --dir "$stack_dir" >"$E2E_TMP/status.log" 2>&1; then
    echo "ok - every stack process is still running"
    ok=$((ok + 1))
else
    echo "not ok - every stack process is still running"
    sed 's/^/#   /' "$E2E_TMP/status.log"
    notok=$((notok + 1))
fi
# Stop now (E2E_KEEP aside): leaks are reported when a program exits.
if [[ ${E2E_KEEP:-0} != 1 ]]; then
    if "$stack" stop --dir "$stack_dir" >"$E2E_TMP/stop.log" 2>&1; then
        started=0
        echo "ok - the stack stops cleanly"
        ok=$((ok + 1))
    else
        echo "not ok - the stack stops cleanly"
        sed 's/^/#   /' "$E2E_TMP/stop.log"
        notok=$((notok + 1))
    fi
fi
# Memory errors, leaks and crashes of the programs land in their logs
# (a missing log would make grep fail with 2 and hide a report elsewhere).
san_logs=()
for f in "$stack_dir"/logs/{api,worker,notify,scheduler}.log "$stack_dir"/logs/{worker,scheduler}-*.log; do [[ -f $f ]] && san_logs+=("$f"); done
if grep -HE 'ERROR: (Address|Leak)Sanitizer|runtime error:|Segmentation fault|stack-buffer|heap-use-after' \
    "${san_logs[@]}" >"$E2E_TMP/san.log" 2>/dev/null; then
    echo "not ok - no sanitizer or crash reports in the logs"
    head -n 20 "$E2E_TMP/san.log" | cut -c1-300 | sed 's/^/#   /'
    notok=$((notok + 1))
else
    echo "ok - no sanitizer or crash reports in the logs"
    ok=$((ok + 1))
fi

if [[ $notok -gt 0 ]]; then
    echo "# logs: $stack_dir/logs (E2E_KEEP=1 keeps them and the stack); last API and worker lines:"
    tail -n 15 "$stack_dir/logs/api.log" 2>/dev/null | sed 's/^/#   api: /'
    tail -n 15 "$stack_dir/logs/worker.log" 2>/dev/null | sed 's/^/#   worker: /'
fi
if [[ -n ${E2E_LOG_DIR:-} ]]; then
    mkdir -p "$E2E_LOG_DIR" && cp -r "$stack_dir/logs/." "$E2E_LOG_DIR/" 2>/dev/null &&
        echo "# the stack's logs are in $E2E_LOG_DIR"
fi
echo "# e2e took $((SECONDS - t0))s"
echo "e2e: $ok passed, $notok failed"
[[ $notok -eq 0 ]]
