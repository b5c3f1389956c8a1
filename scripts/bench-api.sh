#!/usr/bin/env bash
# bench-api.sh: a few numbers about a running stack.
#
#   scripts/bench-api.sh [--dir DIR] [--duration S] [--connections N] [--jobs N]
#
#  - POST /api/v1/jobs under wrk (default 50 connections, 20 s; the jobs
#    wait for a run_at far ahead, so the API is measured, not the encoder):
#    requests/s, p50 and p99 latency;
#  - the median time from submission (created_at) to started_at over 20
#    one-second jobs submitted one at a time to an idle worker;
#  - the RSS of an idle kadr-api process and of the idle worker (/proc).
#
# The stack must be up (scripts/stack.sh start or quickstart.sh). A bench
# user is created on each run; its jobs stay in the database.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$top/run duration=20 conns=50 n_jobs=20
while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) dir=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --jobs) n_jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-api.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

die() { echo "bench-api.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
"$top/scripts/stack.sh" status --dir "$dir" >/dev/null || die "the stack in $dir is not up (scripts/stack.sh status --dir $dir)"
eval "$("$top/scripts/stack.sh" env --dir "$dir" | sed 's/^/export /')"
url=$KADR_URL
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
first_pid() { head -n 1 "$1" 2>/dev/null | tr -dc 0-9; }

api_pid=$(first_pid "$KADR_STACK_DIR/api.pid")
worker_pid=$(first_pid "$KADR_STACK_DIR/worker-1.pid")
api_rss_idle=$(rss_kb "$api_pid")
worker_rss_idle=$(rss_kb "$worker_pid")

# A user and a ready media file to point the jobs at. An admin: plans
# limit jobs per hour (doc/security.md), admins have no such limit.
out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --admin \
    --email "bench-$(date +%s)-$RANDOM@kadr.local" --api-key)
key=$(sed -n 's/^api_key: *//p' <<<"$out")
[[ $key == kadr_* ]] || die "kadrctl gave no key: $out"
auth=(-H "Authorization: Bearer $key")
ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x180:rate=25:duration=2 \
    -c:v libx264 -preset veryfast -pix_fmt yuv420p "$work/clip.mp4"
size=$(stat -c %s "$work/clip.mp4")
up=$(curl -sS -f "${auth[@]}" -H 'Content-Type: application/json' \
    -d "{\"filename\":\"clip.mp4\",\"size\":$size,\"content_type\":\"video/mp4\"}" "$url/api/v1/uploads")
curl -sS -f -o /dev/null -T "$work/clip.mp4" "$(jq -r .url <<<"$up")"
curl -sS -f -o /dev/null "${auth[@]}" -H 'Content-Type: application/json' -d '{}' \
    "$url/api/v1/uploads/$(jq -r .upload_id <<<"$up")/complete"
media=$(jq -r .media_id <<<"$up")
for _ in $(seq 1 300); do
    [[ $(curl -sS "${auth[@]}" "$url/api/v1/media/$media" | jq -r .status) == ready ]] && break
    sleep 0.2
done

# 1. Submission throughput.
echo "wrk: $conns connections, ${duration}s, POST /api/v1/jobs ..."
KADR_BENCH_KEY=$key KADR_BENCH_MEDIA=$media \
    wrk -t 2 -c "$conns" -d "${duration}s" --latency -s "$top/scripts/bench-jobs.lua" \
    "$url/api/v1/jobs" >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out"; die "wrk failed"; }
line=$(grep '^BENCH ' "$work/wrk.out") || { cat "$work/wrk.out"; die "wrk printed no summary"; }
declare -A res
for kv in ${line#BENCH }; do res[${kv%%=*}]=${kv#*=}; done
rps=$(awk -v r="${res[requests]}" -v d="${res[duration_us]}" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
api_rss_loaded=$(rss_kb "$api_pid")

# The wrk jobs are pending until 2099; let the worker drain their messages
# (it reads each, sees the run_at and acknowledges) before timing pickups.
for _ in $(seq 1 600); do
    stats=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" queue stats --json 2>/dev/null || echo '{}')
    [[ $(jq '[.queues[]? | .lag + .pending] | add // 0' <<<"$stats" 2>/dev/null) == 0 ]] && break
    sleep 0.5
done

# 2. Submission to start, one job at a time.
echo "queue latency: $n_jobs jobs, one at a time ..."
: >"$work/lat"
for _ in $(seq 1 "$n_jobs"); do
    id=$(curl -sS -f "${auth[@]}" -H 'Content-Type: application/json' \
        -d "{\"inputs\":[{\"media_id\":\"$media\",\"start\":0,\"end\":1}]}" "$url/api/v1/jobs" | jq -r .id)
    for _ in $(seq 1 600); do
        job=$(curl -sS "${auth[@]}" "$url/api/v1/jobs/$id")
        case $(jq -r .status <<<"$job") in completed|failed|cancelled) break ;; esac
        sleep 0.1
    done
    jq -r '[.created_at, .started_at] | map(if . == null then "" else . end) | @tsv' <<<"$job" |
        while IFS=$'\t' read -r c s; do
            [[ -n $s ]] || { echo "job $id never started" >&2; continue; }
            echo $(( $(date -u -d "$s" +%s%3N) - $(date -u -d "$c" +%s%3N) ))
        done >>"$work/lat"
done
median_ms=$(sort -n "$work/lat" | awk '{ a[NR] = $1 } END { if (NR == 0) print "?"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
worker_rss_after=$(rss_kb "$worker_pid")

printf '\n%-44s %s\n' "measure" "value"
printf '%-44s %s\n' "--------------------------------------------" "----------------"
printf '%-44s %s\n' "POST /api/v1/jobs, requests/s ($conns conns)" "$rps"
printf '%-44s %s ms\n' "  latency p50" "$(awk -v u="${res[p50_us]}" 'BEGIN { printf "%.1f", u / 1000 }')"
printf '%-44s %s ms\n' "  latency p99" "$(awk -v u="${res[p99_us]}" 'BEGIN { printf "%.1f", u / 1000 }')"
printf '%-44s %s\n' "  requests, non-2xx, socket errors" "${res[requests]}, ${res[non2xx]}, ${res[socket_errors]}"
printf '%-44s %s ms\n' "submission -> started_at, median of $(wc -l <"$work/lat")" "$median_ms"
printf '%-44s %s KiB\n' "kadr-api RSS, idle (pid $api_pid)" "$api_rss_idle"
printf '%-44s %s KiB\n' "kadr-api RSS, after the load" "$api_rss_loaded"
printf '%-44s %s KiB\n' "kadr-worker RSS, idle (pid $worker_pid)" "$worker_rss_idle"
printf '%-44s %s KiB\n' "kadr-worker RSS, after $n_jobs jobs" "$worker_rss_after"
