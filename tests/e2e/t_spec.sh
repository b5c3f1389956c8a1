#!/usr/bin/env bash
# Every invalid job body of data/invalid_jobs.tsv is refused with the
# expected status, and a 422 names the field path; nothing is created.
. ./lib.sh

KEY_B=$(new_user spec-b) || exit 1
KEY=$KEY_B
begin "setup: another user's media"
sample_media || { finish; exit 1; }
other=$MEDIA_ID
end
KEY=$(new_user spec) || exit 1
begin "setup: the caller's media"
sample_media || { finish; exit 1; }
mine=$MEDIA_ID
end

big=$(head -c 5000 /dev/zero | tr '\0' x)
missing=$(cat /proc/sys/kernel/random/uuid)

api GET /api/v1/jobs
jobs_before=$(jqr '.items | length')

n=0
while IFS=$'\t' read -r want field body; do
    [[ -z $want || $want == \#* ]] && continue
    n=$((n + 1))
    body=${body//@M@/$mine}
    body=${body//@OTHER@/$other}
    body=${body//@MISSING@/$missing}
    body=${body//@4K@/$big}
    begin "invalid job $n: $want ${field/#-/(no field)}: $(printf '%.90s' "$body")"
    api POST /api/v1/jobs "$body"
    IFS='|' read -r -a wants <<<"$want"
    if [[ $field != - ]]; then
        expect_status "${wants[@]}" && expect_field_error "$field"
    else
        expect_status "${wants[@]}" && expect_problem "$STATUS"
    fi
done <"$E2E_DATA/invalid_jobs.tsv"

begin "a 422 lists every invalid field at once"
api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$mine\",\"start\":-1}],\"priority\":0,\"output\":{\"container\":\"avi\"}}"
expect_field_error inputs[0].start
expect_field_error priority
expect_field_error output.container

begin "no job was created by any invalid body"
api GET /api/v1/jobs
expect_status 200
expect_json '.items | length' "$jobs_before"

begin "a valid body with every section is accepted"
spec=$(jq -cn --arg m "$mine" '{
  type: "edit",
  inputs: [{media_id: $m, start: 0.5, end: 2.5}, {media_id: $m, start: 1, end: 2}],
  transition: {type: "fade", duration: 0.25},
  layers: [
    {type: "text", text: "Привет, мир %{pts} \\n", font: "DejaVu Sans", size: 32, color: "#FFFFFF",
     background: "#00000080", position: "bottom", margin: 12, start: 0, end: 2},
    {type: "video", media_id: $m, position: "top-right", width: 0.3, margin: 8, start: 0.5,
     border: {width: 2, color: "#FFFFFF"}}],
  audio: {media_id: $m, mode: "mix", volume: 0.3, original_volume: 1.0, offset: 0, loop: true, fade_out: 0.5},
  output: {container: "mp4", video_codec: "h264", audio_codec: "aac", width: 320, height: 180,
           fit: "contain", fps: 25, crf: 30, preset: "veryfast", audio_bitrate: "96k"},
  thumbnails: {count: 2, width: 160},
  priority: 3,
  run_at: "2099-01-01T00:00:00Z",
  metadata: {e2e: true}}')
api POST /api/v1/jobs "$spec"
expect_status 202
expect_json .status pending
expect_json .priority 3
expect_json .metadata.e2e true
expect_header Location "/api/v1/jobs/$(jqr .id)"
job=$(jqr .id)
# It waits for 2099; cancel it so that it never runs.
api POST "/api/v1/jobs/$job/cancel" '{}'
expect_status 200

finish
