#!/usr/bin/env bash
# Hostile media through the API (doc/security.md, doc/internals/media.md):
# playlists disguised as video that would read a local file or reach the
# network, an empty file, a truncated MP4, a mislabelled file and absurd
# picture sizes each fail cleanly with forbidden_input or invalid_media
# and a message; the worker keeps working (the next job completes); and a
# job whose text layer holds hostile strings really runs and draws them.
. ./lib.sh

KEY=$(new_user hostile) || exit 1
H=$E2E_TMP/hostile
mkdir -p "$H"

# rejected PATH TYPE NAME CODE: uploads PATH and expects the media rejected
# with error CODE and a message.
rejected() {
    upload_file "$1" "$2" "$3" || return 1
    wait_media "$MEDIA_ID" 60 || return 1
    expect_json .status rejected
    expect_jq ".error.code == \"$4\" and (.error.message | length) > 5" \
        "$3: error $4 with a message (got $(jqr .error.code): $(jqr .error.message))"
}

begin "setup: hostile files"
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n/etc/passwd\n#EXT-X-ENDLIST\n' \
    >"$H/local.mp4"
printf 'ffconcat version 1.0\nfile http://127.0.0.1:9/x.mp4\nfile http://127.0.0.1:9/y.mp4\n' >"$H/net.mp4"
ok=1
# The index (moov) at the end, and only the first half kept.
ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 \
    -c:v libx264 -preset ultrafast "$H/whole.mp4" || ok=0
head -c $(($(stat -c %s "$H/whole.mp4") / 2)) "$H/whole.mp4" >"$H/truncated.mp4"
# Sound only, named and declared as an MP4 video.
ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:sample_rate=44100:duration=1 \
    "$H/sound.wav" || ok=0
# A PNG whose header claims 100000x100000 pixels (the CRC is left wrong:
# the size is refused before it matters).
ffmpeg -nostdin -v error -y -f lavfi -i color=c=red:size=16x16 -frames:v 1 "$H/small.png" || ok=0
{ head -c 16 "$H/small.png"; printf '\x00\x01\x86\xa0\x00\x01\x86\xa0'; tail -c +25 "$H/small.png"; } \
    >"$H/huge.png"
# A raw YUV4MPEG stream claiming the same (and one frame of nothing).
{ printf 'YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n'; head -c 4096 /dev/zero; } >"$H/huge.y4m"
check "ffmpeg made the media" test "$ok" = 1
end

begin "an HLS playlist disguised as .mp4 naming a local file: forbidden_input"
rejected "$H/local.mp4" video/mp4 local.mp4 forbidden_input

begin "an ffconcat script disguised as .mp4 naming network addresses: forbidden_input"
rejected "$H/net.mp4" video/mp4 net.mp4 forbidden_input

begin "a zero-byte file: refused at the upload or rejected as media"
api POST /api/v1/uploads '{"filename":"empty.mp4","size":0,"content_type":"video/mp4"}'
expect_field_error size
: >"$H/empty.mp4"
api POST /api/v1/uploads '{"filename":"empty.mp4","size":1,"content_type":"video/mp4"}'
if expect_status 201; then
    up=$(jqr .upload_id)
    media=$(jqr .media_id)
    mapfile -t hargs < <(jq -r '.headers // {} | to_entries[] | "-H", "\(.key): \(.value)"' <<<"$BODY")
    put_raw "$(jqr .url)" "$H/empty.mp4" "${hargs[@]}" >/dev/null
    api POST "/api/v1/uploads/$up/complete" '{}'
    if [[ $STATUS == 200 ]]; then
        wait_media "$media" 60 && expect_json .status rejected
        expect_json .error.code invalid_media
    else
        check "complete of an empty upload: status $STATUS" test "${STATUS:0:1}" = 4
    fi
fi

begin "a truncated MP4 (no index): invalid_media"
rejected "$H/truncated.mp4" video/mp4 truncated.mp4 invalid_media

begin "a PNG claiming 100000x100000 pixels: invalid_media"
rejected "$H/huge.png" image/png huge.png invalid_media

begin "a YUV4MPEG stream claiming 100000x100000 pixels: invalid_media"
rejected "$H/huge.y4m" video/mp4 huge.mp4 invalid_media

begin "a WAV labelled as an MP4 video: read as sound; as a video layer the job fails invalid_media"
if upload_file "$H/sound.wav" video/mp4 clip.mp4 && wait_media "$MEDIA_ID" 60; then
    expect_json .status ready
    expect_json .kind audio
    wav=$MEDIA_ID
    if sample_media; then
        submit_job "$(jq -cn --arg m "$MEDIA_ID" --arg w "$wav" \
            '{inputs: [{media_id: $m, end: 1}], layers: [{type: "video", media_id: $w}],
              output: {preset: "ultrafast"}}')" || note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
        if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
            expect_json .status failed
            expect_json .error.code invalid_media
            expect_jq '.error.message | test("no picture")' "the message names the missing picture"
        fi
    fi
fi

begin "hostile text strings are drawn literally, and the job completes"
if sample_media; then
    sample=$MEDIA_ID
    text=$(printf '%%{localtime} %%{eif:1/0:d} %%{pts}\\\\ \x27q\x27 "d" :x=1;y [a] {b} $1\r\nПривет, мир — 😀 drawtext=text=x:fontfile=/etc/passwd')
    # fontconfig syntax in a font name is refused by the spec itself.
    api POST /api/v1/jobs "$(jq -cn --arg m "$sample" \
        '{inputs: [{media_id: $m}], layers: [{type: "text", text: "x",
          font: "DejaVu Sans:file=/etc/passwd"}]}')"
    expect_field_error "layers[0].font"
    submit_job "$(jq -cn --arg m "$sample" --arg t "$text" \
        '{inputs: [{media_id: $m, start: 0, end: 1}],
          layers: [{type: "text", text: $t, size: 20, position: "bottom", margin: 4,
                    background: "#000000FF"}],
          output: {preset: "ultrafast"}}')" || note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
    if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
        expect_json .status completed
        loc=$(jqr '.outputs[0].url')
        api GET "$loc"
        loc=$(hdr Location)
        [[ $loc == http* ]] || loc=$KADR_URL$loc
        curl -sS -o "$H/text.mp4" "$loc"
        dur=$(probe "$H/text.mp4" .format.duration)
        check "duration $dur, expected 1.0" near "$dur" 1.0 0.1
        # Two lines in a black box at the bottom (360 px high); the top
        # of the picture is the sample's, re-encoded.
        bottom=$(band_psnr "$H/text.mp4" 0.5 "$E2E_MEDIA/sample.mp4" 0.5 300 56)
        top=$(band_psnr "$H/text.mp4" 0.5 "$E2E_MEDIA/sample.mp4" 0.5 0 200)
        check "the text box was drawn: bottom band PSNR '$bottom' dB (expected < 20)" below "$bottom" 20
        check "nothing else changed: top band PSNR '$top' dB (expected > 30)" above "$top" 30
    fi
fi

begin "the next job after hostile media still succeeds"
if [[ -n ${sample:-} ]]; then
    submit_job "{\"inputs\":[{\"media_id\":\"$sample\",\"start\":0,\"end\":1}],\"output\":{\"preset\":\"ultrafast\"}}" ||
        note "POST /jobs: $STATUS"
    if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
        expect_json .status completed
    fi
fi

finish
