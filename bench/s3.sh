#!/usr/bin/env bash
# bench/s3.sh: upload and download throughput of one large file through
# kadr's presigned URLs on both storage backends, on loopback, against a
# plain curl PUT/GET to the same server as the ceiling; and the time before
# a worker can start decoding that file on S3 compared with local disk.
#
#   bench/s3.sh [--size-mb N]      (default 1024: a 1 GiB file)
#
#  local: a private stack (scripts/stack.sh); the presigned PUT and GET go
#         through nginx, which asks the API about each URL (auth_request);
#         ceiling: a bare nginx with WebDAV PUT on the same machine.
#  s3:    the same stack with storage_backend = s3 against s3rver behind the
#         SigV4-verifying front (tests/s3/s3server.sh); above the 64 MiB
#         threshold the API answers a multipart upload, whose parts curl
#         PUTs one after the other; ceiling: curl straight to s3rver
#         (anonymous, no signature check, one PUT).
#  worker start: a job trimming the first 2 s of the input, from POST /jobs
#         to its first progress: the job child opens the object in place on
#         local disk and reads it by ranged GETs on S3 (kd_storage_reader
#         behind a custom AVIOContext). For comparison, what the worker did
#         before that reader was wired in: one streamed GET of the whole
#         object into the job directory (kd_storage_get_file) before the
#         child could start; and the reader's first 64 KiB and a whole
#         sequential read through it (its read-ahead throughput).
# Prints a table in the Markdown of doc/benchmarks.md. Takes a few minutes.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mb=1024
while [[ $# -gt 0 ]]; do
    case $1 in
    --size-mb) size_mb=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/s3.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
bin=${KADR_BIN_DIR:-$top}
[[ -x $bin/fcgi/kadr-api && -f $bin/src/libkadr.a ]] || { echo "bench/s3.sh: build first (or set KADR_BIN_DIR)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kadr-bench-s3.XXXXXX")
chmod 0755 "$work"
stack_dir=$work/stack
cleanup() {
    "$top/scripts/stack.sh" stop --dir "$stack_dir" >/dev/null 2>&1 || true
    "$top/tests/s3/s3server.sh" stop "$work/s3" >/dev/null 2>&1 || true
    [[ ! -f $work/nginx/nginx.pid ]] || nginx -p "$work/nginx/" -c conf/nginx.conf -s stop 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { # free_port: a port p with p and p+1 free
    local p
    while :; do
        p=$((42000 + (RANDOM % 5000) * 4))
        port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)) && port_free $((p + 3)) &&
            { echo "$p"; return; }
    done
}
now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Real media (the download of a file that failed its probe is refused):
# 10 s of lossless 720p looped without re-encoding up to the size.
file=$work/big.mkv
echo "bench/s3.sh: a $size_mb MiB video in $work" >&2
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 \
    -c:v libx264 -preset ultrafast -qp 0 "$work/seed.mkv"
ffmpeg -nostdin -loglevel error -stream_loop -1 -i "$work/seed.mkv" -c copy \
    -fs $((size_mb * 1048576)) "$file"
rm -f "$work/seed.mkv"
bytes=$(stat -c %s "$file")

# --- a stack, a user, an upload through the API ----------------------------
start_stack() { # start_stack [s3 endpoint]
    mkdir -p "$stack_dir"
    printf 'upload_max_bytes = %s\n' $((bytes + 1)) >"$stack_dir/local.conf"
    if [[ -n ${1:-} ]]; then
        printf '%s\n' 'storage_backend = s3' "s3_endpoint = $1" 's3_bucket = kadr' \
            's3_access_key = S3RVER' 's3_secret_key = S3RVER' >>"$stack_dir/local.conf"
    fi
    KADR_BIN_DIR=$bin "$top/scripts/stack.sh" start --dir "$stack_dir" --port-base "$(free_port)" \
        --workers 1 >"$work/stack.log" 2>&1 || { cat "$work/stack.log" >&2; exit 1; }
    eval "$("$top/scripts/stack.sh" env --dir "$stack_dir" | sed 's/^/export /')"
    KEY=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --email "bench-$RANDOM$RANDOM@bench.test" \
        --api-key | sed -n 's/^api_key: *//p' | head -n 1)
}
stop_stack() { "$top/scripts/stack.sh" stop --dir "$stack_dir" >/dev/null 2>&1; rm -rf "$stack_dir"; }

api() { # api METHOD PATH [JSON]: prints the body
    curl -sS -X "$1" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "$KADR_URL$2"
}

# upload_through_api: POST /uploads, PUT (or PUT the parts), complete;
# prints "seconds media_id".
upload_through_api() {
    local body t0 t1 tp n i url etag parts=() media up part_size
    body=$(api POST /api/v1/uploads "{\"filename\":\"big.mkv\",\"size\":$bytes,\"content_type\":\"video/x-matroska\"}")
    up=$(jq -r .upload_id <<<"$body")
    media=$(jq -r .media_id <<<"$body")
    t0=$(now)
    if [[ $(jq -r .method <<<"$body") == multipart ]]; then
        part_size=$(jq -r .part_size <<<"$body")
        n=$(jq -r '.parts | length' <<<"$body")
        # PUT_PARALLEL parts at once (default 4), as a browser client would:
        # each part straight from the file (dd skips to its offset; -T -
        # with the length given streams it), its ETag into a file of its own.
        mkdir -p "$work/etags"
        put_part() {
            local i=$1 url
            url=$(jq -r ".parts[$i].url" <<<"$body")
            dd if="$file" bs="$part_size" skip="$i" count=1 status=none |
                curl -sS -f -D - -o /dev/null -T - -H "Transfer-Encoding:" \
                    -H "Content-Length: $(( i < n - 1 ? part_size : bytes - i * part_size ))" "$url" |
                sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p' >"$work/etags/$i"
        }
        for ((i = 0; i < n; i++)); do
            while (( $(jobs -rp | wc -l) >= ${PUT_PARALLEL:-4} )); do wait -n; done
            put_part "$i" &
        done
        wait
        for ((i = 0; i < n; i++)); do
            etag=$(cat "$work/etags/$i")
            [[ -n $etag ]] || { echo "bench/s3.sh: part $((i + 1)) was refused" >&2; exit 1; }
            parts+=("$(jq -cn --argjson n $((i + 1)) --arg e "$etag" '{part_number: $n, etag: $e}')")
        done
        tp=$(now)
        api POST "/api/v1/uploads/$up/complete" "$(printf '%s\n' "${parts[@]}" | jq -cs '{parts: .}')" >/dev/null
        t1=$(now)
        echo "bench/s3.sh: $n parts (${PUT_PARALLEL:-4} at once) in $(secs "$t0" "$tp") s, complete in $(secs "$tp" "$t1") s" >&2
        echo "$n parts, ${PUT_PARALLEL:-4} at once: $(secs "$t0" "$tp") s; complete: $(secs "$tp" "$t1") s" >"$work/breakdown"
    else
        curl -sS -f -o /dev/null -T "$file" -H 'Content-Type: application/octet-stream' "$(jq -r .url <<<"$body")"
        api POST "/api/v1/uploads/$up/complete" '{}' >/dev/null
        t1=$(now)
    fi
    echo "$(secs "$t0" "$t1") $media"
}

wait_ready() { # wait_ready MEDIA: the probe is done (a download needs it)
    local i
    for ((i = 0; i < 600; i++)); do
        [[ $(api GET "/api/v1/media/$1" | jq -r .status) == ready ]] && return 0
        sleep 0.2
    done
    echo "bench/s3.sh: media $1 not ready" >&2
    exit 1
}

# download_through_api MEDIA: the presigned GET; prints seconds.
download_through_api() {
    local loc t0 t1
    loc=$(curl -sS -o /dev/null -w '%{redirect_url}' -H "Authorization: Bearer $KEY" \
        "$KADR_URL/api/v1/media/$1/download")
    # timed into /dev/null like the ceilings; the bytes are checked once more
    # afterwards (the e2e suite checks them too)
    t0=$(now)
    curl -sS -o /dev/null "$loc"
    t1=$(now)
    curl -sS "$loc" | cmp -s "$file" - || { echo "bench/s3.sh: the download differs" >&2; exit 1; }
    secs "$t0" "$t1"
}

# first_progress MEDIA: POST /jobs trimming the first 2 s; seconds until the
# job shows progress (the child has opened, probed and decoded the input).
first_progress() {
    local job t0 t1 p i
    t0=$(now)
    job=$(api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$1\",\"start\":0,\"end\":2}],\"output\":{\"width\":320,\"height\":180,\"preset\":\"ultrafast\"}}" | jq -r .id)
    for ((i = 0; i < 12000; i++)); do
        p=$(api GET "/api/v1/jobs/$job" | jq -r '.status + " " + (.progress | tostring)')
        [[ $p == "completed "* || ($p == "processing "* && ${p#* } -gt 0) ]] && break
        sleep 0.05
    done
    t1=$(now)
    secs "$t0" "$t1"
}

# --- the worker's start: a helper over libkadr ------------------------------
cat >"$work/start.c" <<'EOF'
/* get_file (S3) or local_path (local), the streaming reader's first
 * 64 KiB, and a whole sequential read through the reader. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "config.h"
#include "storage.h"
static double t(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    struct kd_config *cfg; struct kd_storage *s; struct kd_storage_reader *r; char err[512], path[4096], buf[65536];
    size_t got; double t0;
    if (argc != 3 || kd_config_load(getenv("KADR_CONFIG"), &cfg, err, sizeof(err)) != KD_OK || kd_storage_open(cfg, &s) != KD_OK) return 2;
    t0 = t();
    if (kd_storage_local_path(s, argv[1], path, sizeof(path)) != KD_OK && kd_storage_get_file(s, argv[1], argv[2]) != KD_OK) return 3;
    printf("%.3f ", t() - t0);
    t0 = t();
    if (kd_storage_reader_open(s, argv[1], &r) != KD_OK || kd_storage_reader_read(r, buf, sizeof(buf), &got) != KD_OK) return 4;
    printf("%.3f ", t() - t0);
    kd_storage_reader_close(r);
    t0 = t();
    if (kd_storage_reader_open(s, argv[1], &r) != KD_OK) return 5;
    do { if (kd_storage_reader_read(r, buf, sizeof(buf), &got) != KD_OK) return 6; } while (got > 0);
    printf("%.3f\n", t() - t0);
    kd_storage_reader_close(r); kd_storage_close(s); kd_config_free(cfg);
    return 0;
}
EOF
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -I"$top/src" -I"$bin" "$work/start.c" "$bin/src/libkadr.a" \
    $(pkg-config --libs libpq hiredis jansson libcurl libxml-2.0 openssl) -o "$work/start"

# --- local disk --------------------------------------------------------------
echo "bench/s3.sh: local disk" >&2
start_stack
read -r l_up l_media < <(upload_through_api)
wait_ready "$l_media"
l_down=$(download_through_api "$l_media")
l_first=$(first_progress "$l_media")
read -r l_start l_reader l_whole < <(KADR_CONFIG=$KADR_CONFIG "$work/start" "media/$l_media" "$work/in.bin")
stop_stack

# the ceiling: a bare nginx taking and serving the file with WebDAV
np=$(free_port)
mkdir -p "$work/nginx/conf" "$work/nginx/logs" "$work/nginx/tmp" "$work/nginx/store"
# As root nginx's workers would run as nobody, who may not enter the
# private work directory: the ceiling would measure a refusal.
user_line=
[[ $EUID -ne 0 ]] || user_line="user root;"
cat >"$work/nginx/conf/nginx.conf" <<EOF
$user_line
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp;
    server {
        listen 127.0.0.1:$np;
        client_max_body_size 0;
        location / { root $work/nginx/store; dav_methods PUT; }
    }
}
EOF
nginx -p "$work/nginx/" -c conf/nginx.conf
t0=$(now); curl -sS -f -o /dev/null -T "$file" "http://127.0.0.1:$np/big.bin"; t1=$(now)
c_local_up=$(secs "$t0" "$t1")
t0=$(now); got=$(curl -sS -f -o /dev/null -w '%{size_download}' "http://127.0.0.1:$np/big.bin"); t1=$(now)
c_local_down=$(secs "$t0" "$t1")
[[ $got == "$bytes" ]] || { echo "bench/s3.sh: the ceiling served $got bytes, not $bytes" >&2; exit 1; }
nginx -p "$work/nginx/" -c conf/nginx.conf -s stop
rm -rf "$work/nginx/store"

# --- S3 -----------------------------------------------------------------------
echo "bench/s3.sh: S3 (s3rver behind the verifying front)" >&2
sp=$(free_port)
"$top/tests/s3/s3server.sh" start "$work/s3" "$sp" kadr
start_stack "http://127.0.0.1:$sp"
read -r s_up s_media < <(upload_through_api)
wait_ready "$s_media"
s_down=$(download_through_api "$s_media")
s_first=$(first_progress "$s_media")
read -r s_start s_reader s_whole < <(KADR_CONFIG=$KADR_CONFIG "$work/start" "media/$s_media" "$work/in.bin")
rm -f "$work/in.bin"
stop_stack
t0=$(now); curl -sS -f -o /dev/null -T "$file" "http://127.0.0.1:$((sp + 1))/kadr/ceiling.bin"; t1=$(now)
c_s3_up=$(secs "$t0" "$t1")
t0=$(now); got=$(curl -sS -f -o /dev/null -w '%{size_download}' "http://127.0.0.1:$((sp + 1))/kadr/ceiling.bin"); t1=$(now)
c_s3_down=$(secs "$t0" "$t1")
[[ $got == "$bytes" ]] || { echo "bench/s3.sh: s3rver served $got bytes, not $bytes" >&2; exit 1; }
# An independent client through the same verifying front: the AWS CLI
# (header-signed requests, one PUT: the front's own multipart completion is
# stricter about the XML than the AWS CLI's flavour of it).
printf '[default]\ns3 =\n    multipart_threshold = 5GB\n' >"$work/aws.conf"
awsc() {
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 \
        AWS_CONFIG_FILE=$work/aws.conf AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        aws --endpoint-url "http://127.0.0.1:$sp" "$@"
}
if command -v aws >/dev/null; then
    t0=$(now); awsc s3 cp --only-show-errors "$file" s3://kadr/awscli.bin; t1=$(now)
    a_up=$(secs "$t0" "$t1")
    t0=$(now); awsc s3 cp --only-show-errors s3://kadr/awscli.bin - >/dev/null; t1=$(now)
    a_down=$(secs "$t0" "$t1")
    aws_row="| S3: the AWS CLI through the same verifying front (one PUT / one GET) | $(mbps $bytes "$a_up") MiB/s ($a_up s) | $(mbps $bytes "$a_down") MiB/s ($a_down s) |"
else
    aws_row="| S3: the AWS CLI (not installed) | - | - |"
fi

cat <<EOF
| $size_mb MiB on loopback | upload | download |
|---|---|---|
| local: kadr presigned URL (nginx + auth_request) | $(mbps $bytes "$l_up") MiB/s ($l_up s) | $(mbps $bytes "$l_down") MiB/s ($l_down s) |
| local: plain curl to a bare nginx (ceiling) | $(mbps $bytes "$c_local_up") MiB/s ($c_local_up s) | $(mbps $bytes "$c_local_down") MiB/s ($c_local_down s) |
| S3: kadr presigned URLs (multipart parts / one GET), verified | $(mbps $bytes "$s_up") MiB/s ($s_up s) | $(mbps $bytes "$s_down") MiB/s ($s_down s) |
| S3: plain curl straight to s3rver (ceiling) | $(mbps $bytes "$c_s3_up") MiB/s ($c_s3_up s) | $(mbps $bytes "$c_s3_down") MiB/s ($c_s3_down s) |
$aws_row

S3 multipart upload through kadr: $(cat "$work/breakdown" 2>/dev/null || echo "one PUT")

| worker, $size_mb MiB input | POST /jobs to first progress | before: copy into the job directory | first 64 KiB through the reader | whole input through the reader |
|---|---|---|---|---|
| local disk | $l_first s (opened in place) | $l_start s (none) | $l_reader s | $(mbps $bytes "$l_whole") MiB/s ($l_whole s) |
| S3 | $s_first s (ranged GETs) | $s_start s (one GET) | $s_reader s | $(mbps $bytes "$s_whole") MiB/s ($s_whole s) |
EOF
