#!/usr/bin/env bash
# Many operations in one job through the API: two inputs joined by a fade,
# a text layer, an image layer and a mixed audio track. The worker runs it
# in one pass; ffprobe and the ffmpeg command line judge the output.
. ./lib.sh

KEY=$(new_user mediaops) || exit 1

# upload_ready PATH TYPE NAME: uploads and waits; sets MEDIA_ID.
upload_ready() {
    upload_file "$1" "$2" "$3" || return 1
    wait_media "$MEDIA_ID" 60 || return 1
    [[ $MEDIA_STATUS == ready ]] || { note "$3 is $MEDIA_STATUS: $(printf '%.300s' "$BODY")"; return 1; }
}

# rms FILE FROM TO: the sound's RMS level (dB) between FROM and TO seconds.
rms() {
    ffmpeg -nostdin -hide_banner -v info -ss "$2" -to "$3" -i "$1" -vn \
        -af astats=measure_perchannel=none -f null - 2>&1 |
        sed -n 's/.*RMS level dB: *\([-0-9.inf]*\).*/\1/p' | tail -n 1
}

begin "setup: two videos, a logo with alpha, a track"
ok=1
ffmpeg -nostdin -v error -y -f lavfi -i color=c=blue:size=320x240:rate=30:duration=2 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$E2E_TMP/blue.mp4" || ok=0
ffmpeg -nostdin -v error -y -f lavfi \
    -i "color=c=red:size=64x64,format=rgba,geq=r=255:g=0:b=0:a='if(lt(X,32),255,0)'" \
    -frames:v 1 "$E2E_TMP/logo.png" || ok=0
ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=880:sample_rate=44100:duration=1 \
    -c:a libmp3lame "$E2E_TMP/track.mp3" || ok=0
check "ffmpeg made the media" test "$ok" = 1
upload_ready "$E2E_MEDIA/sample.mp4" video/mp4 sample.mp4 && m_sample=$MEDIA_ID
upload_ready "$E2E_TMP/blue.mp4" video/mp4 blue.mp4 && m_blue=$MEDIA_ID
upload_ready "$E2E_TMP/logo.png" image/png logo.png && m_logo=$MEDIA_ID
upload_ready "$E2E_TMP/track.mp3" audio/mpeg track.mp3 && m_track=$MEDIA_ID
end

begin "join + fade + text + image + audio mix in one job"
spec=$(jq -cn --arg a "${m_sample:-}" --arg b "${m_blue:-}" --arg l "${m_logo:-}" \
    --arg t "${m_track:-}" '{
  inputs: [{media_id: $a, start: 1.0, end: 3.0}, {media_id: $b}],
  transition: {type: "fade", duration: 0.5},
  layers: [{type: "text", text: "kadr", size: 32, position: "bottom"},
           {type: "image", media_id: $l, position: "top-left", width: 0.1, margin: 0,
            opacity: 1.0}],
  audio: {media_id: $t, mode: "mix", volume: 1.0, loop: true, fade_out: 0.5},
  output: {container: "mp4", preset: "ultrafast"}}')
if submit_job "$spec"; then
    if wait_job "$JOB_ID" 120; then
        expect_json .status completed
        # 2.0 + 2.0 - 0.5
        expect_jq '.outputs[0].duration >= 3.4 and .outputs[0].duration <= 3.6' "duration 3.5 ± 0.1"
        loc=$(jqr '.outputs[0].url')
        api GET "$loc"
        loc=$(hdr Location)
        [[ $loc == http* ]] || loc=$KADR_URL$loc
        curl -sS -o "$E2E_TMP/ops.mp4" "$loc"
        out=$E2E_TMP/ops.mp4
        dur=$(probe "$out" .format.duration)
        check "ffprobe duration $dur, expected 3.5 ± 0.1" near "$dur" 3.5 0.1
        check "two streams" test "$(probe "$out" '.streams | length')" = 2
        check "h264 640x360 at 25 fps (the first input's)" test \
            "$(probe "$out" '[.streams[]|select(.codec_type=="video")][0] | "\(.codec_name) \(.width)x\(.height) \(.r_frame_rate)"')" \
            = "h264 640x360 25/1"
        check "aac audio" test "$(probe "$out" '[.streams[]|select(.codec_type=="audio")][0].codec_name')" = aac
        # The blue input has no sound; the looped track still plays there.
        level=$(rms "$out" 2.5 2.9)
        [[ -z $level || $level == *inf* ]] && level=-999
        check "sound over the silent input: RMS '$level' dB (expected > -40)" above "$level" -40
        # The logo's opaque half is red: ffmpeg reads the pixel back.
        px=$(ffmpeg -nostdin -v error -ss 3.0 -i "$out" -frames:v 1 -vf crop=8:8:8:8,scale=1:1 \
            -f rawvideo -pix_fmt rgb24 - | od -An -tu1 | tr -s ' ')
        read -r red green blue <<<"$px"
        check "logo pixel '$px' is not red" test "${red:-0}" -gt 150 -a "${green:-255}" -lt 80 -a "${blue:-255}" -lt 80
    fi
else
    note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
fi

# fetch_output FILE: downloads the job's main output (BODY is the job).
fetch_output() {
    local loc
    loc=$(jqr '.outputs[0].url')
    api GET "$loc"
    loc=$(hdr Location)
    [[ $loc == http* ]] || loc=$KADR_URL$loc
    curl -sS -o "$1" "$loc"
}

begin "a WebM without a length in its header, then a still image, with thumbnails"
ok=1
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi \
    -i sine=sample_rate=48000 -t 2 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 \
    -c:a libopus -f webm -live 1 "$E2E_TMP/live.webm" || ok=0
check "ffmpeg made the WebM" test "$ok" = 1
if upload_ready "$E2E_TMP/live.webm" video/webm live.webm; then
    expect_jq '.probe.duration == null' "the probe gives no duration"
    m_live=$MEDIA_ID
    spec=$(jq -cn --arg a "$m_live" --arg l "${m_logo:-}" '{
      inputs: [{media_id: $a}, {media_id: $l, end: 1}],
      thumbnails: {count: 2, width: 160}, output: {preset: "ultrafast"}}')
    if submit_job "$spec"; then
        if wait_job "$JOB_ID" 120; then
            expect_json .status completed
            expect_jq '.outputs | length == 3' "the output and two thumbnails"
            fetch_output "$E2E_TMP/live.mp4"
            dur=$(probe "$E2E_TMP/live.mp4" .format.duration)
            check "duration $dur, expected 3.0 (2 s measured + 1 s of image)" near "$dur" 3.0 0.1
        fi
    else
        note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
    fi
fi

begin "the picture copied while an added track is mixed into the sound"
spec=$(jq -cn --arg a "${m_sample:-}" --arg t "${m_track:-}" '{
  inputs: [{media_id: $a}], audio: {media_id: $t, mode: "mix"},
  output: {video_codec: "copy"}}')
if submit_job "$spec"; then
    if wait_job "$JOB_ID" 120; then
        expect_json .status completed
        fetch_output "$E2E_TMP/copymix.mp4"
        sizes() { ffprobe -v error -select_streams v:0 -show_entries packet=size -of csv=p=0 "$1" | tr -dc '0-9\n'; }
        check "the video packets are the input's" test "$(sizes "$E2E_TMP/copymix.mp4")" = "$(sizes "$E2E_MEDIA/sample.mp4")"
        check "aac audio" test "$(probe "$E2E_TMP/copymix.mp4" '[.streams[]|select(.codec_type=="audio")][0].codec_name')" = aac
    fi
else
    note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
fi

finish
