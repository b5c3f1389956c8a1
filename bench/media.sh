#!/bin/sh
# bench/media.sh: the media engine against the ffmpeg command line, same
# work and settings (libx264 preset veryfast crf 23, aac 128k, same thread
# count), on generated 1280x720 30 fps clips of 10 s with audio.
#
#   bench/media.sh [BUILD_DIR]      (default: the current directory)
#
# Environment: RUNS (default 3), THREADS (default 0 = auto, for both),
# WORK (scratch directory, default a new one under /tmp; removed unless
# KEEP=1). Prints one row per operation: median wall seconds of kadr-edit
# and of ffmpeg and their ratio, the same for CPU seconds (user + sys: the
# steadier figure on a shared machine; for kadr-edit its job child's
# included), and the peak RSS of the job child (what kadr-edit reports from
# wait4). kadr-edit runs the edit as the worker does: in a job child with
# the worker's rlimits, through kd_run_edit (engine, then the output probed
# and hashed). The two programs alternate run by run. A row whose operation
# the engine does not run (or runs without the expected result) prints n/a.
set -eu

BUILD=${1:-.}
EDIT=$BUILD/tools/kadr-edit
RUNS=${RUNS:-3}
THREADS=${THREADS:-0}
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

[ -x "$EDIT" ] || { echo "bench/media.sh: no $EDIT (build first)" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d /tmp/kadr-bench.XXXXXX)}
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

ID1=00000000-0000-4000-8000-000000000001
ID2=00000000-0000-4000-8000-000000000002
ID3=00000000-0000-4000-8000-000000000003
ID4=00000000-0000-4000-8000-000000000004

# ---- media (x264 with one keyframe a second, closed GOPs: remuxable) ----
clip() { # name, testsrc pattern, sine frequency
    [ -f "$WORK/$1" ] && return 0
    ffmpeg -v error -y -f lavfi -i "$2=size=1280x720:rate=30" \
        -f lavfi -i "sine=frequency=$3:sample_rate=48000" -t 10 \
        -c:v libx264 -preset veryfast -crf 23 -g 30 -keyint_min 30 -sc_threshold 0 \
        -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -shortest "$WORK/$1"
}
clip c1.mp4 testsrc2 440
clip c2.mp4 testsrc2 550
clip c3.mp4 testsrc2 660
[ -f "$WORK/pip.mp4" ] || ffmpeg -v error -y -f lavfi -i "smptebars=size=640x360:rate=30" \
    -t 10 -c:v libx264 -preset veryfast -pix_fmt yuv420p "$WORK/pip.mp4"
[ -f "$WORK/music.m4a" ] || ffmpeg -v error -y -f lavfi -i "sine=frequency=220:sample_rate=48000" \
    -t 10 -c:a aac -b:a 128k -ac 2 "$WORK/music.m4a"
awk 'BEGIN { for (i = 0; i < 10; i++)
    printf "%d\n00:00:%02d,000 --> 00:00:%02d,800\nSubtitle line %d\n\n", i + 1, i, i, i + 1 }' \
    > "$WORK/subs.srt"

ENC="-c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -c:a aac -b:a 128k -threads $THREADS"
OUT='"output": {"container": "mp4", "video_codec": "h264", "crf": 23, "preset": "veryfast"}'

# ---- measuring ----
# One timed run of "$@" appended to file $1 as "wall_s max_rss_kib cpu_s";
# fails when the command does.
timed() {
    dst=$1
    shift
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/t1" "$@" > "$WORK/log.out" 2> "$WORK/log.err" ||
        return 1
    # kadr-edit names its job child's peak RSS; ffmpeg is one process.
    rss=$(sed -n 's/^peak_rss \([0-9]*\) KiB$/\1/p' "$WORK/log.out")
    awk -v rss="$rss" '{ printf "%s %s %.2f\n", $1, rss != "" ? rss : $2, $3 + $4 }' "$WORK/t1" >> "$dst"
}

# "median_wall_s max_rss_kib median_cpu_s" of a file of timed() lines.
summary() {
    sort -n "$1" | awk '{ w[NR] = $1; if ($2 > m) m = $2 } END { printf "%.2f %d ", w[int((NR + 1) / 2)], m }'
    sort -n -k3 "$1" | awk '{ c[NR] = $3 } END { printf "%.2f\n", c[int((NR + 1) / 2)] }'
}

row() { # name, check, spec, kadr args, --, ffmpeg args
    name=$1 check=$2 spec=$3
    shift 3
    ka=""
    while [ "$1" != -- ]; do ka="$ka $1"; shift; done
    shift
    : > "$WORK/k.times"
    : > "$WORK/f.times"
    kok=1
    i=0
    # kadr and ffmpeg alternate, so a change of load hits both alike.
    while [ $i -lt "$RUNS" ]; do
        rm -rf "$WORK/wd" "$WORK/k.mp4"
        # shellcheck disable=SC2086
        if [ $kok = 1 ] && ! timed "$WORK/k.times" "$EDIT" --quiet --threads "$THREADS" \
            --spec "$spec" --work-dir "$WORK/wd" $ka --output "$WORK/k.mp4"; then
            kok=0
        fi
        [ $kok = 1 ] && ! $check && kok=0
        timed "$WORK/f.times" ffmpeg -v error -y "$@" || { echo "$name: ffmpeg failed" >&2; exit 1; }
        i=$((i + 1))
    done
    set -- $(summary "$WORK/f.times")
    fw=$1 fc=$3
    if [ $kok = 0 ]; then
        printf '%-24s %7s %7s %6s %7s %7s %6s %9s\n' "$name" n/a "$fw" n/a n/a "$fc" n/a n/a
        return 0
    fi
    set -- $(summary "$WORK/k.times")
    printf '%-24s %7s %7s %6s %7s %7s %6s %5d MiB\n' "$name" "$1" "$fw" \
        "$(awk "BEGIN { printf \"%.2f\", $1 / $fw }")" "$3" "$fc" \
        "$(awk "BEGIN { printf \"%.2f\", $3 / $fc }")" $(($2 / 1024))
}

spec() { # name, json
    printf '%s\n' "$2" > "$WORK/$1.json"
    echo "$WORK/$1.json"
}

ok() { return 0; }
# The remux row counts only if the video packets were copied, not re-encoded.
copied() {
    a=$(ffprobe -v error -select_streams v:0 -show_entries packet=data_hash -show_data_hash MD5 \
        -read_intervals '%+#3' -of csv=p=0 "$WORK/c1.mp4")
    b=$(ffprobe -v error -select_streams v:0 -show_entries packet=data_hash -show_data_hash MD5 \
        -read_intervals '%+#3' -of csv=p=0 "$WORK/k.mp4")
    [ "$a" = "$b" ]
}
# The thumbnail row counts only if the engine wrote the thumbnails.
thumbs() { [ "$(grep -c '^thumbnail ' "$WORK/log.out")" -eq 5 ]; }
# The subtitle row counts only if the first cue (0.0-0.8 s) was drawn: the
# bottom band differs from the input there, the top band does not.
band() { # time, y, height: PSNR of that band of k.mp4 against c1.mp4
    ffmpeg -hide_banner -v info -ss "$1" -i "$WORK/k.mp4" -ss "$1" -i "$WORK/c1.mp4" \
        -filter_complex "[0:v]crop=1280:$3:0:$2[a];[1:v]crop=1280:$3:0:$2[b];[a][b]psnr" \
        -frames:v 1 -f null - 2>&1 | sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -n 1
}
burned() {
    low=$(band 0.4 600 120)
    high=$(band 0.4 0 400)
    [ -n "$low" ] && [ "$low" != inf ] && [ -n "$high" ] &&
        awk -v l="$low" -v h="$high" 'BEGIN { exit !(l < 25 && (h == "inf" || h > 30)) }'
}

printf 'machine: %s, %s cores; ffmpeg %s; runs %s, threads %s\n' \
    "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
    "$(ffmpeg -version | sed -n '1s/ffmpeg version \([^ ]*\).*/\1/p')" "$RUNS" "$THREADS"
printf '%-24s %7s %7s %6s %7s %7s %6s %9s\n' row "kadr s" "ff s" ratio "kadr" "ff" ratio "kadr"
printf '%-24s %7s %7s %6s %7s %7s %6s %9s\n' "" wall wall wall "cpu s" "cpu s" cpu "peak RSS"

row transcode ok "$(spec transcode "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}], $OUT}")" \
    --input "$WORK/c1.mp4" -- -i "$WORK/c1.mp4" $ENC "$WORK/f.mp4"

row "text layer" ok "$(spec text "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}],
    \"layers\": [{\"type\": \"text\", \"text\": \"Hello kadr\", \"size\": 48, \"position\": \"bottom\",
    \"margin\": 24}], $OUT}")" \
    --input "$WORK/c1.mp4" -- -i "$WORK/c1.mp4" \
    -vf "drawtext=fontfile=$FONT:text=Hello kadr:fontsize=48:fontcolor=white:x=(w-tw)/2:y=h-th-24:expansion=none" \
    $ENC "$WORK/f.mp4"

row "concat 3, re-encode" ok "$(spec concat "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"},
    {\"media_id\": \"$ID2\"}, {\"media_id\": \"$ID3\"}], $OUT}")" \
    --input "$WORK/c1.mp4" "$WORK/c2.mp4" "$WORK/c3.mp4" -- \
    -i "$WORK/c1.mp4" -i "$WORK/c2.mp4" -i "$WORK/c3.mp4" \
    -filter_complex "[0:v][0:a][1:v][1:a][2:v][2:a]concat=n=3:v=1:a=1[v][a]" -map "[v]" -map "[a]" \
    $ENC "$WORK/f.mp4"

printf "file '%s'\nfile '%s'\nfile '%s'\n" "$WORK/c1.mp4" "$WORK/c2.mp4" "$WORK/c3.mp4" > "$WORK/list.txt"
row "concat 3, remux" copied "$(spec remux "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"},
    {\"media_id\": \"$ID2\"}, {\"media_id\": \"$ID3\"}], \"output\": {\"container\": \"mp4\"}}")" \
    --input "$WORK/c1.mp4" "$WORK/c2.mp4" "$WORK/c3.mp4" -- \
    -f concat -safe 0 -i "$WORK/list.txt" -c copy -movflags +faststart "$WORK/f.mp4"

row picture-in-picture ok "$(spec pip "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}],
    \"layers\": [{\"type\": \"video\", \"media_id\": \"$ID4\", \"width\": 0.3, \"position\": \"top-right\",
    \"margin\": 16}], $OUT}")" \
    --input "$WORK/c1.mp4" --layer "$WORK/pip.mp4" -- -i "$WORK/c1.mp4" -i "$WORK/pip.mp4" \
    -filter_complex "[1:v]scale=384:-2[p];[0:v][p]overlay=W-w-16:16[v]" -map "[v]" -map 0:a \
    $ENC "$WORK/f.mp4"

row "audio mix" ok "$(spec mix "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}],
    \"audio\": {\"media_id\": \"$ID4\", \"mode\": \"mix\"}, $OUT}")" \
    --input "$WORK/c1.mp4" --audio "$WORK/music.m4a" -- -i "$WORK/c1.mp4" -i "$WORK/music.m4a" \
    -filter_complex "[0:a][1:a]amix=inputs=2:duration=first:normalize=0[a]" -map 0:v -map "[a]" \
    $ENC "$WORK/f.mp4"

row "burned subtitles" burned "$(spec subs "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}],
    \"layers\": [{\"type\": \"subtitles\", \"media_id\": \"$ID4\", \"mode\": \"burn\"}], $OUT}")" \
    --input "$WORK/c1.mp4" --layer "$WORK/subs.srt" -- -i "$WORK/c1.mp4" \
    -vf "subtitles=$WORK/subs.srt" $ENC "$WORK/f.mp4"

row "thumbnails (+transcode)" thumbs "$(spec thumbs "{\"type\": \"edit\", \"inputs\": [{\"media_id\": \"$ID1\"}],
    \"thumbnails\": {\"count\": 5, \"width\": 320}, $OUT}")" \
    --input "$WORK/c1.mp4" -- -i "$WORK/c1.mp4" $ENC "$WORK/f.mp4" \
    -vf "fps=0.5:start_time=1,scale=320:-2" -frames:v 5 -q:v 3 "$WORK/fthumb-%d.jpg"
