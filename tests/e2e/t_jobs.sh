#!/usr/bin/env bash
# A real edit: trim + a Cyrillic text layer, run by the worker; the output
# is probed and downloaded through the API's redirect.
. ./lib.sh

KEY=$(new_user jobs) || exit 1

begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "a trim + text job completes with a probed output"
spec=$(jq -cn --arg m "$media" '{
  inputs: [{media_id: $m, start: 1.0, end: 3.5}],
  layers: [{type: "text", text: "Привет, kadr! %{pts} 100%", size: 36, position: "bottom",
            color: "#FFFFFF", background: "#00000080"}],
  output: {container: "mp4", video_codec: "h264", audio_codec: "aac", preset: "veryfast"},
  metadata: {case: "t_jobs"}}')
if submit_job "$spec"; then
    job=$JOB_ID
    expect_header Location "/api/v1/jobs/$job"
    expect_json .status pending
    expect_json .progress 0
    last=0 regress=0
    # Progress never goes back while it runs.
    deadline=$((SECONDS + 120))
    while (( SECONDS < deadline )); do
        api GET "/api/v1/jobs/$job"
        p=$(jqr .progress)
        s=$(jqr .status)
        [[ $p =~ ^[0-9]+$ ]] && { (( p < last )) && regress=1; last=$p; }
        [[ $s == completed || $s == failed || $s == cancelled ]] && break
        sleep 0.2
    done
    check "progress went backwards" test "$regress" = 0
    expect_json .status completed
    expect_json .progress 100
    expect_json .error null
    expect_jq '.started_at != null and .finished_at != null' "started_at and finished_at set"
    expect_json .metadata.case t_jobs
    expect_jq '.outputs[0].name == "main"' "outputs[0] is main"
    expect_jq '.outputs[0].duration >= 2.4 and .outputs[0].duration <= 2.6' "output duration 2.5 ± 0.1"
    out_url=$(jqr '.outputs[0].url')
    out_media=$(jqr '.outputs[0].media_id')
    out_size=$(jqr '.outputs[0].size')
    out_sha=$(jqr '.outputs[0].sha256')
    api GET "$out_url"
    expect_status 302
    loc=$(hdr Location)
    [[ $loc == http* ]] || loc=$KADR_URL$loc
    code=$(curl -sS -o "$E2E_TMP/out.mp4" -w '%{http_code}' "$loc")
    check "download of the output: $code" test "$code" = 200
    check "size differs from outputs[0].size ($out_size)" test "$(stat -c %s "$E2E_TMP/out.mp4")" = "$out_size"
    check "sha256 differs from outputs[0].sha256" test "$(sha256sum "$E2E_TMP/out.mp4" | cut -d' ' -f1)" = "$out_sha"
    dur=$(probe "$E2E_TMP/out.mp4" .format.duration)
    check "ffprobe duration $dur, expected 2.5 ± 0.1" near "$dur" 2.5 0.1
    check "video codec $(probe "$E2E_TMP/out.mp4" '[.streams[]|select(.codec_type=="video")][0].codec_name'), expected h264" \
        test "$(probe "$E2E_TMP/out.mp4" '[.streams[]|select(.codec_type=="video")][0].codec_name')" = h264
    check "audio codec, expected aac" \
        test "$(probe "$E2E_TMP/out.mp4" '[.streams[]|select(.codec_type=="audio")][0].codec_name')" = aac
    check "output is not 640x360" \
        test "$(probe "$E2E_TMP/out.mp4" '[.streams[]|select(.codec_type=="video")][0] | "\(.width)x\(.height)"')" = 640x360

    begin "the output is a Media of the user"
    api GET "/api/v1/media/$out_media"
    expect_status 200
    expect_json .status ready
    expect_json .kind video

    begin "the text was drawn at the bottom and nothing else changed"
    # Output 0.5 s is input 1.5 s (the trim starts at 1.0).
    bottom=$(band_psnr "$E2E_TMP/out.mp4" 0.5 "$E2E_MEDIA/sample.mp4" 1.5 280 80)
    top=$(band_psnr "$E2E_TMP/out.mp4" 0.5 "$E2E_MEDIA/sample.mp4" 1.5 0 200)
    check "bottom band PSNR '$bottom' dB: no text drawn (expected < 30)" below "$bottom" 30
    check "top band PSNR '$top' dB: the picture changed where no layer is (expected > 35)" above "${top:-0}" 35

    begin "job events tell the story"
    api GET "/api/v1/jobs/$job/events"
    expect_status 200
    expect_jq '(.items // .) | length >= 2' "at least two events"

    begin "the output can be the input of another job"
    submit_job "{\"inputs\":[{\"media_id\":\"$out_media\",\"start\":0,\"end\":1}],\"output\":{\"container\":\"mkv\"}}"
    expect_status 202
    if wait_job "$JOB_ID" 120; then
        expect_json .status completed
        expect_jq '.outputs[0].duration >= 0.9 and .outputs[0].duration <= 1.1' "duration 1 ± 0.1"
    fi
else
    note "POST /jobs: $STATUS $(printf '%.300s' "$BODY")"
fi

begin "a job waits for media still processing, then runs"
upload_file "$E2E_MEDIA/sample.mp4" video/mp4 fresh.mp4 || true
submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\",\"end\":1}]}"
expect_status 202
if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
    expect_json .status completed
fi

finish
