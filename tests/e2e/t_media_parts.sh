#!/usr/bin/env bash
# Subtitles, thumbnails and the remux path through the API and the worker:
# a Windows-1251 SRT with a broken cue burned in (with thumbnails as extra
# outputs), the same SRT as a soft track of a copied video in MKV, and a
# concatenation that is remuxed (video packets identical to the input's).
. ./lib.sh

KEY=$(new_user mediaparts) || exit 1

upload_ready() {
    upload_file "$1" "$2" "$3" || return 1
    wait_media "$MEDIA_ID" 60 || return 1
    [[ $MEDIA_STATUS == ready ]] || { note "$3 is $MEDIA_STATUS: $(printf '%.300s' "$BODY")"; return 1; }
}

# fetch_output NAME FILE: downloads the job's output NAME (BODY: the Job).
fetch_output() {
    local loc
    loc=$(jqr "[.outputs[] | select(.name == \"$1\")][0].url")
    [[ -n $loc && $loc != null ]] || { note "no output $1"; return 1; }
    api GET "$loc"
    loc=$(hdr Location)
    [[ $loc == http* ]] || loc=$KADR_URL$loc
    curl -sS -o "$2" "$loc"
}

# The video packets of a file, one MD5 per line.
vhashes() {
    ffprobe -v error -select_streams v:0 -show_entries packet=data_hash -show_data_hash MD5 \
        -of csv=p=0 "$1"
}

begin "setup: a video and a Windows-1251 SRT with a broken cue"
# "Привет" in Windows-1251; the second cue's timing line is invalid.
printf '1\r\n00:00:01,000 --> 00:00:02,500\r\n\xcf\xf0\xe8\xe2\xe5\xf2\r\n\r\n2\r\n00:00:0x,000 --> 00:00:03,000\r\nbroken\r\n\r\n3\r\n00:00:03,000 --> 00:00:04,000\r\nthird\r\n' \
    >"$E2E_TMP/cp1251.srt"
upload_ready "$E2E_MEDIA/sample.mp4" video/mp4 sample.mp4 && m_video=$MEDIA_ID
upload_ready "$E2E_TMP/cp1251.srt" application/x-subrip cp1251.srt && m_srt=$MEDIA_ID
end

begin "burned subtitles and thumbnails"
spec=$(jq -cn --arg v "${m_video:-}" --arg s "${m_srt:-}" '{
  inputs: [{media_id: $v}],
  layers: [{type: "subtitles", media_id: $s, mode: "burn",
            style: {size: 40, color: "#FFFF00", outline: 3}}],
  thumbnails: {count: 3, width: 160},
  output: {container: "mp4", preset: "ultrafast"}}')
if submit_job "$spec" && wait_job "$JOB_ID" 120; then
    expect_json .status completed
    job=$BODY
    check "outputs main + thumbnail-1..3" test \
        "$(jq -r '[.outputs[].name] | join(",")' <<<"$job")" = "main,thumbnail-1,thumbnail-2,thumbnail-3"
    check "thumbnails are image/jpeg" test \
        "$(jq -r '[.outputs[] | select(.name | startswith("thumbnail")) | .content_type] | unique | join(",")' <<<"$job")" = image/jpeg
    BODY=$job
    if fetch_output thumbnail-2 "$E2E_TMP/thumb.jpg"; then
        check "thumbnail 160x90 mjpeg" test \
            "$(probe "$E2E_TMP/thumb.jpg" '.streams[0] | "\(.codec_name) \(.width)x\(.height)"')" = "mjpeg 160x90"
    fi
    BODY=$job
    if fetch_output main "$E2E_TMP/burn.mp4"; then
        # Yellow text in the bottom band at 1.5 s (cue 1) and not at 0.5 s.
        on=$(band_psnr "$E2E_TMP/burn.mp4" 1.5 "$E2E_MEDIA/sample.mp4" 1.5 280 60)
        off=$(band_psnr "$E2E_TMP/burn.mp4" 0.5 "$E2E_MEDIA/sample.mp4" 0.5 280 60)
        check "subtitle drawn at 1.5 s (band PSNR $on dB < 30)" below "$on" 30
        check "nothing drawn at 0.5 s (band PSNR $off dB > 30)" above "$off" 30
    fi
    api GET "/api/v1/jobs/$JOB_ID/events"
    check "a warning event for the broken cue" \
        jq -e '[.. | objects | select(.event? == "warning") | tostring] | any(test("subtitles: line 6: invalid timing"))' <<<"$BODY" >/dev/null
else
    note "burn job: $STATUS $(printf '%.300s' "$BODY")"
fi
end

begin "soft subtitles in MKV with the video copied"
spec=$(jq -cn --arg v "${m_video:-}" --arg s "${m_srt:-}" '{
  inputs: [{media_id: $v}],
  layers: [{type: "subtitles", media_id: $s, mode: "soft"}],
  output: {container: "mkv", video_codec: "copy", audio_codec: "copy"}}')
if submit_job "$spec" && wait_job "$JOB_ID" 120; then
    expect_json .status completed
    if fetch_output main "$E2E_TMP/soft.mkv"; then
        check "an ass subtitle stream" test \
            "$(probe "$E2E_TMP/soft.mkv" '[.streams[] | select(.codec_type == "subtitle")][0].codec_name')" = ass
        ffmpeg -nostdin -v error -i "$E2E_TMP/soft.mkv" -map 0:s:0 -f srt - >"$E2E_TMP/soft.srt" 2>&1
        check "two cues (the broken one skipped)" test "$(grep -c -- '-->' "$E2E_TMP/soft.srt")" = 2
        check "Cyrillic text decoded from Windows-1251" grep -q 'Привет' "$E2E_TMP/soft.srt"
        check "video packets copied" test "$(vhashes "$E2E_TMP/soft.mkv" | md5sum)" = \
            "$(vhashes "$E2E_MEDIA/sample.mp4" | md5sum)"
    fi
else
    note "soft job: $STATUS $(printf '%.300s' "$BODY")"
fi
end

begin "concatenation by remux"
spec=$(jq -cn --arg v "${m_video:-}" '{
  inputs: [{media_id: $v}, {media_id: $v, start: 2, end: 4}], output: {container: "mp4"}}')
if submit_job "$spec" && wait_job "$JOB_ID" 120; then
    expect_json .status completed
    expect_jq '.outputs[0].duration >= 6.9 and .outputs[0].duration <= 7.1' "duration 7 ± 0.1"
    if fetch_output main "$E2E_TMP/remux.mp4"; then
        want=$({ vhashes "$E2E_MEDIA/sample.mp4"; vhashes "$E2E_MEDIA/sample.mp4" | sed -n 51,100p; } | md5sum)
        check "video packets identical to the inputs'" test "$(vhashes "$E2E_TMP/remux.mp4" | md5sum)" = "$want"
    fi
else
    note "remux job: $STATUS $(printf '%.300s' "$BODY")"
fi
end

finish
