#!/usr/bin/env bash
# jobs.sh: job throughput end to end, kadr beside Celery + Redis.
#
#   bench/jobs.sh [--jobs N] [--slots N] [--parallel N] [--dir DIR]
#                 [--port-base N] [--no-celery] [--keep]
#
# kadr: a private stack (scripts/stack.sh --dir, its own ports) with one
# worker of --slots slots (default 4). N small jobs (default 1000: a 0.4 s
# cut of a 0.5 s 64x64 clip with sound, re-encoded to H.264/AAC MP4) are
# submitted as fast as the API takes them (one curl, --parallel requests in
# flight on kept-alive connections, default 32). When every job is final,
# each is checked: completed, one "completed" event, one main output. The
# figures: jobs/s end to end (first created_at to last finished_at), the
# submission rate, and p50/p99 of started_at - created_at.
#
# Celery (bench/celery/, Debian's python3-celery, python3-redis, python3-av):
# a private Redis on a unix socket, a worker with --slots prefork processes,
# acks_late and prefetch 1 (kadr also takes one job per free slot and
# acknowledges after the outcome), and the same cut and encode through PyAV.
# The kadr stack is stopped first, so the two never share the CPU.
#
# Prints one "RESULT" line per system and a Markdown table. Not a test: the
# figures depend on the machine. The stack directory goes at the end unless
# --keep.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n_jobs=1000 slots=4 parallel=32 dir='' port_base='' celery=1 keep=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --jobs) n_jobs=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    --no-celery) celery=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "jobs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "jobs.sh: $*" >&2; exit 1; }
say() { echo "jobs.sh: $*" >&2; }
[[ $n_jobs =~ ^[0-9]+$ && $n_jobs -ge 1 ]] || die "--jobs must be a positive number"
[[ $slots =~ ^[0-9]+$ && $slots -ge 1 && $slots -le 64 ]] || die "--slots must be 1..64"
[[ $parallel =~ ^[0-9]+$ && $parallel -ge 1 ]] || die "--parallel must be a positive number"
for c in curl jq ffmpeg psql; do command -v "$c" >/dev/null || die "$c not found"; done

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z $port_base ]]; then
    for _ in $(seq 1 50); do
        port_base=$((20000 + (RANDOM % 9000) * 4))
        port_free "$port_base" && port_free $((port_base + 1)) && break
    done
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/kadr-bench-jobs.XXXXXX")
chmod 0755 "$work"
[[ -n $dir ]] || dir=$work/stack
stack=$top/scripts/stack.sh
started=0 redis_pid='' celery_pid=''

cleanup() {
    [[ -z $celery_pid ]] || kill -TERM "$celery_pid" 2>/dev/null || true
    [[ -z $redis_pid ]] || kill -TERM "$redis_pid" 2>/dev/null || true
    if [[ $started -eq 1 && $keep -eq 0 ]]; then
        "$stack" stop --dir "$dir" >/dev/null 2>&1 || true
    fi
    if [[ $keep -eq 0 ]]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT

# The input: 0.5 s of 64x64 video at 25 fps with a sine tone.
ffmpeg -nostdin -hide_banner -loglevel error \
    -f lavfi -i testsrc2=size=64x64:rate=25:duration=0.5 \
    -f lavfi -i sine=frequency=440:sample_rate=48000:duration=0.5 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 25 -c:a aac -b:a 64k -shortest \
    -movflags +faststart "$work/tiny.mp4"

# percentiles FILE: p50 and p99 (nearest rank) of the numbers in FILE.
percentiles() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- -"; exit }
        i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
        printf "%.3f %.3f\n", v[i50], v[i99] }'
}

# ------------------------------------------------------------------ kadr
say "kadr: starting a stack in $dir (port base $port_base, 1 worker x $slots slots)"
mkdir -p "$dir"
printf 'worker_slots = %s\n' "$slots" >"$dir/local.conf"
"$stack" start --dir "$dir" --port-base "$port_base" --api-procs 2 --workers 1 >"$work/start.log" 2>&1 ||
    { cat "$work/start.log" >&2; die "the stack did not start"; }
started=1
eval "$("$stack" env --dir "$dir" | sed 's/^/export /')"
url=$KADR_URL
conninfo=$(sed -n 's/^database_url = //p' "$KADR_CONFIG" | tail -n 1)
sql() { psql "$conninfo" -X -tAq -v ON_ERROR_STOP=1 -c "$1"; }

# An admin: plans limit jobs per hour (doc/security.md), admins do not.
out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --admin \
    --email "bench-$(date +%s)-$RANDOM@kadr.local" --api-key --json)
key=$(jq -r .api_key <<<"$out")
user=$(jq -r .user_id <<<"$out")
[[ $key == kadr_* ]] || die "kadrctl gave no key: $out"
auth="Authorization: Bearer $key"
size=$(stat -c %s "$work/tiny.mp4")
up=$(curl -sS -f -H "$auth" -H 'Content-Type: application/json' \
    -d "{\"filename\":\"tiny.mp4\",\"size\":$size,\"content_type\":\"video/mp4\"}" "$url/api/v1/uploads")
curl -sS -f -o /dev/null -T "$work/tiny.mp4" "$(jq -r .url <<<"$up")"
curl -sS -f -o /dev/null -H "$auth" -H 'Content-Type: application/json' -d '{}' \
    "$url/api/v1/uploads/$(jq -r .upload_id <<<"$up")/complete"
media=$(jq -r .media_id <<<"$up")
for _ in $(seq 1 300); do
    [[ $(curl -sS -H "$auth" "$url/api/v1/media/$media" | jq -r .status) == ready ]] && break
    sleep 0.2
done
[[ $(curl -sS -H "$auth" "$url/api/v1/media/$media" | jq -r .status) == ready ]] || die "the input never became ready"

# Every request of one curl run: per-request options after each "next".
printf '{"inputs":[{"media_id":"%s","start":0,"end":0.4}],"output":{"container":"mp4","video_codec":"h264","audio_codec":"aac","preset":"veryfast"}}' \
    "$media" >"$work/job.json"
mkdir -p "$work/resp"
for ((i = 1; i <= n_jobs; i++)); do
    [[ $i -eq 1 ]] || echo next
    printf 'url = "%s/api/v1/jobs"\nheader = "%s"\nheader = "Content-Type: application/json"\n' "$url" "$auth"
    printf 'data-binary = "@%s"\noutput = "%s/resp/%d.json"\nwrite-out = "%%{http_code}\\n"\n' \
        "$work/job.json" "$work" "$i"
done >"$work/curl.cfg"

say "kadr: submitting $n_jobs jobs ($parallel requests in flight)"
k_load0=$(cut -d' ' -f1 /proc/loadavg)
t_sub0=$(date +%s.%N)
curl -sS --parallel --parallel-max "$parallel" --config "$work/curl.cfg" >"$work/codes.txt" 2>"$work/curl.err" || true
t_sub1=$(date +%s.%N)
accepted=$(grep -c '^202$' "$work/codes.txt" || true)
[[ $accepted -eq $n_jobs ]] || say "kadr: only $accepted of $n_jobs submissions answered 202: $(sort "$work/codes.txt" | uniq -c | tr '\n' ' ')"

say "kadr: waiting for every job to be final"
final_sql="SELECT count(*) FROM jobs WHERE user_id = '$user' AND status IN ('completed','failed','cancelled')"
deadline=$((SECONDS + 3600))
while :; do
    done_n=$(sql "$final_sql")
    [[ $done_n -ge $accepted ]] && break
    (( SECONDS < deadline )) || die "only $done_n of $accepted jobs final after an hour"
    sleep 0.5
done

sql "SELECT extract(epoch FROM started_at - created_at) FROM jobs
      WHERE user_id = '$user' AND started_at IS NOT NULL" >"$work/kadr-wait.txt"
read -r k_p50 k_p99 < <(percentiles "$work/kadr-wait.txt")
read -r k_span k_completed k_failed < <(sql "SELECT round(extract(epoch FROM max(finished_at) - min(created_at))::numeric, 3),
      count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status <> 'completed')
      FROM jobs WHERE user_id = '$user'" | tr '|' ' ')
# Exactly once: one completed event and one main output per job.
k_bad=$(sql "SELECT count(*) FROM jobs j WHERE j.user_id = '$user' AND (
      (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.event = 'completed') <> 1
      OR (SELECT count(*) FROM job_outputs o WHERE o.job_id = j.id AND o.name = 'main') <> 1)")
k_retried=$(sql "SELECT count(*) FROM jobs WHERE user_id = '$user' AND attempts <> 1")
k_load1=$(cut -d' ' -f1 /proc/loadavg)
k_rate=$(awk -v n="$k_completed" -v s="$k_span" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
k_sub=$(awk -v n="$accepted" -v a="$t_sub0" -v b="$t_sub1" 'BEGIN { printf "%.0f", n / (b - a) }')
echo "RESULT system=kadr jobs=$n_jobs accepted=$accepted completed=$k_completed not_completed=$k_failed not_exactly_once=$k_bad attempts_not_1=$k_retried span_s=$k_span jobs_per_s=$k_rate submit_per_s=$k_sub wait_p50_s=$k_p50 wait_p99_s=$k_p99 load_before=$k_load0 load_after=$k_load1"

"$stack" stop --dir "$dir" >/dev/null 2>&1 || say "stopping the stack failed"
started=0

# ------------------------------------------------------------------ Celery
c_line=
if [[ $celery -eq 1 ]]; then
    py=/usr/bin/python3
    if ! "$py" -c 'import celery, redis, av' 2>/dev/null; then
        say "Celery: python3-celery, python3-redis or python3-av missing; skipped (apt-get install python3-celery python3-redis python3-av)"
    else
        mkdir -p "$work/celery/out"
        sock=$work/celery/redis.sock
        redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --save '' \
            --appendonly no --dir "$work/celery" --daemonize no >"$work/celery/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 1 100); do [[ -S $sock ]] && break; sleep 0.1; done
        export KADR_BENCH_BROKER="redis+socket://$sock"
        say "Celery: starting a worker with $slots processes"
        (cd "$top/bench/celery" && exec "$py" -m celery -A tasks worker --concurrency "$slots" \
            --pool prefork --loglevel WARNING --without-gossip --without-mingle --without-heartbeat) \
            >"$work/celery/worker.log" 2>&1 &
        celery_pid=$!
        say "Celery: submitting $n_jobs tasks"
        c_load0=$(cut -d' ' -f1 /proc/loadavg)
        c_line=$(cd "$top/bench/celery" && "$py" run.py --jobs "$n_jobs" --src "$work/tiny.mp4" \
            --out-dir "$work/celery/out" --end 0.4 --warmup "$slots") || { tail -n 20 "$work/celery/worker.log" >&2; die "the Celery run failed"; }
        c_line="$c_line load_before=$c_load0 load_after=$(cut -d' ' -f1 /proc/loadavg)"
        echo "$c_line"
    fi
fi

# ------------------------------------------------------------------ table
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
k_line="RESULT system=kadr jobs=$n_jobs completed=$k_completed not_exactly_once=$k_bad jobs_per_s=$k_rate submit_per_s=$k_sub wait_p50_s=$k_p50 wait_p99_s=$k_p99 load_before=$k_load0 load_after=$k_load1"
echo
echo "| system | jobs | completed | not exactly once | jobs/s end to end | submitted/s | wait p50 | wait p99 | load avg before/after |"
echo "|---|---|---|---|---|---|---|---|---|"
for l in "$k_line" ${c_line:+"$c_line"}; do
    printf '| %s | %s | %s | %s | %s | %s | %s s | %s s | %s / %s |\n' "$(val "$l" system)" \
        "$(val "$l" jobs)" "$(val "$l" completed)" "$(val "$l" not_exactly_once)" \
        "$(val "$l" jobs_per_s)" "$(val "$l" submit_per_s)" "$(val "$l" wait_p50_s)" \
        "$(val "$l" wait_p99_s)" "$(val "$l" load_before)" "$(val "$l" load_after)"
done
