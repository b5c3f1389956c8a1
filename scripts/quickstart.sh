#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian 12 to an edited video, in one command.
#
#   sudo scripts/quickstart.sh      (or as root; scripts/stop.sh stops it all)
#
# Installs the missing packages, builds kadr, starts the local stack in
# ./run (scripts/stack.sh), makes a demo user and API key (kept in
# run/demo.key), generates a 5 s sample video, then walks the API once:
# upload through a presigned URL, complete, wait for the probe, submit an
# edit job (trim + a text layer), follow its progress and download the
# result into run/. Running it again reuses the stack, the key and the
# sample. KADR_PORT_BASE picks the ports (default 8080: http 8080, https 8081).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
run=$top/run
port_base=${KADR_PORT_BASE:-8080}

if [[ -t 1 ]]; then
    say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '==> %s\n' "$*"; }
fi
die() { echo "quickstart: $*" >&2; exit 1; }

# 1. Packages.
say "checking packages"
if [[ $EUID -eq 0 ]]; then
    bash scripts/deps.sh --stack install
elif [[ -n $(bash scripts/deps.sh --stack missing) ]]; then
    die "missing packages: $(bash scripts/deps.sh --stack missing | tr '\n' ' ')— run as root, or apt-get install them"
fi

# 2. Build (in the tree; incremental on a second run).
say "building kadr"
{
    if [[ ! -f Makefile ]]; then
        autoreconf -fi && ./configure
    fi && make -j"$(nproc)"
} >"$top/build.log" 2>&1 || { tail -n 30 "$top/build.log" >&2; die "the build failed (see build.log)"; }

# 3. The stack.
say "starting the stack in $run"
scripts/stack.sh start --dir "$run" --port-base "$port_base"
eval "$(scripts/stack.sh env --dir "$run" | sed 's/^/export /')"
url=$KADR_URL
ctl() { "$KADR_BIN/kadrctl" --config "$KADR_CONFIG" "$@"; }

# 4. A demo user and key, made once.
key=""
if [[ -s $run/demo.key ]]; then
    key=$(cat "$run/demo.key")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$url/api/v1/media?limit=1")
    [[ $code == 200 ]] || { echo "the saved key no longer works ($code); making a new one"; key=""; }
fi
if [[ -z $key ]]; then
    say "creating the demo user and API key"
    out=$(ctl user create --email demo@kadr.local --api-key 2>&1) ||
        out=$(ctl user create --email "demo-$(date +%s)@kadr.local" --api-key 2>&1) ||
        die "kadrctl user create failed: $out"
    key=$(sed -n 's/^api_key: *//p' <<<"$out" | head -n 1)
    [[ $key == kadr_* ]] || die "kadrctl printed no api_key: $out"
    (umask 077 && printf '%s\n' "$key" >"$run/demo.key")
fi
auth=(-H "Authorization: Bearer $key")

# 5. A sample video.
sample=$run/sample.mp4
if [[ ! -s $sample ]]; then
    say "generating a 5 s sample video with ffmpeg"
    ffmpeg -nostdin -hide_banner -loglevel error \
        -f lavfi -i testsrc2=size=640x360:rate=25:duration=5 \
        -f lavfi -i sine=frequency=440:sample_rate=48000:duration=5 \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest \
        -movflags +faststart "$sample.tmp.mp4"
    mv "$sample.tmp.mp4" "$sample"
fi

# api METHOD PATH [JSON]: prints the body; fails on a status >= 400.
api() {
    local args=(-sS -X "$1" "${auth[@]}" -w '\n%{http_code}')
    [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    local out code
    out=$(curl "${args[@]}" "$url$2")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    if [[ $code -ge 400 ]]; then
        echo "$1 $2 -> $code: $out" >&2
        return 1
    fi
    printf '%s\n' "$out"
}

# 6. Upload: ask for a URL, PUT the bytes there, complete.
size=$(stat -c %s "$sample")
say "POST /api/v1/uploads ($size bytes)"
up=$(api POST /api/v1/uploads "{\"filename\":\"sample.mp4\",\"size\":$size,\"content_type\":\"video/mp4\"}")
upload_id=$(jq -r .upload_id <<<"$up")
media_id=$(jq -r .media_id <<<"$up")
put_url=$(jq -r .url <<<"$up")
mapfile -t put_headers < <(jq -r '.headers // {} | to_entries[] | "-H", "\(.key): \(.value)"' <<<"$up")
say "PUT the file to the presigned URL"
code=$(curl -sS -o /dev/null -w '%{http_code}' -T "$sample" "${put_headers[@]}" "$put_url")
[[ $code == 200 || $code == 201 || $code == 204 ]] || die "the upload PUT answered $code"
api POST "/api/v1/uploads/$upload_id/complete" '{}' >/dev/null

say "waiting for the worker to probe media $media_id"
deadline=$((SECONDS + 120))
while :; do
    m=$(api GET "/api/v1/media/$media_id")
    status=$(jq -r .status <<<"$m")
    [[ $status == ready ]] && break
    [[ $status == rejected ]] && die "the sample was rejected: $(jq -c .error <<<"$m")"
    (( SECONDS < deadline )) || die "media still $status after 120 s (see $run/logs/worker.log)"
    sleep 0.5
done
jq -r '"    \(.probe.duration) s, " + ([.probe.streams[] | "\(.type) \(.codec)"] | join(", "))' <<<"$m"

# 7. The edit job: seconds 1 to 4, with a caption.
say "POST /api/v1/jobs (trim 1-4 s + text layer)"
spec=$(jq -cn --arg m "$media_id" '{
  inputs: [{media_id: $m, start: 1, end: 4}],
  layers: [{type: "text", text: "Привет, kadr!", size: 40, color: "#FFFFFF",
            background: "#00000080", position: "bottom", margin: 24}],
  output: {container: "mp4", video_codec: "h264", audio_codec: "aac", preset: "veryfast"}}')
job=$(api POST /api/v1/jobs "$spec")
job_id=$(jq -r .id <<<"$job")
echo "    job $job_id"
deadline=$((SECONDS + 600))
last=""
while :; do
    job=$(api GET "/api/v1/jobs/$job_id")
    line=$(jq -r '"    \(.status) \(.progress)%" + (if .stage then " (\(.stage))" else "" end)' <<<"$job")
    [[ $line == "$last" ]] || { echo "$line"; last=$line; }
    case $(jq -r .status <<<"$job") in
    completed) break ;;
    failed|cancelled) die "the job ended $(jq -r .status <<<"$job"): $(jq -c .error <<<"$job")" ;;
    esac
    (( SECONDS < deadline )) || die "the job is not done after 600 s (see $run/logs/worker.log)"
    sleep 0.5
done

# 8. Download: the output's URL redirects (302) to a presigned download.
out_path=$(jq -r '.outputs[0].url' <<<"$job")
loc=$(curl -sS -o /dev/null -w '%{redirect_url}' "${auth[@]}" "$url$out_path")
[[ -n $loc ]] || die "GET $out_path gave no redirect"
result=$run/result-$job_id.mp4
say "downloading the result"
code=$(curl -sS -o "$result" -w '%{http_code}' "$loc")
[[ $code == 200 ]] || die "the download answered $code"

say "done: $result"
ffprobe -v error -print_format json -show_format -show_streams "$result" | jq -r '
  "    duration \(.format.duration | tonumber | . * 100 | round / 100) s, \(.format.size) bytes, " +
  ([.streams[] | if .codec_type == "video" then "video \(.codec_name) \(.width)x\(.height)"
                 else "\(.codec_type) \(.codec_name)" end] | join(", "))'
cat <<EOF

The stack keeps running: API at $url/api/v1/ (and $KADR_HTTPS_URL with
--cacert $KADR_TLS_CERT), your key in run/demo.key, logs in run/logs/.
Stop it with: scripts/stop.sh
EOF
