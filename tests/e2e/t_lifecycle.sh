#!/usr/bin/env bash
# Cancel, retry and delete, and the 409s of the state machine.
. ./lib.sh

KEY=$(new_user lifecycle) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "cancel a pending job: 200 cancelled at once"
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}" || note "POST /jobs: $STATUS"
pending=$JOB_ID
expect_json .status pending
api POST "/api/v1/jobs/$pending/cancel" '{}'
expect_status 200
expect_json .status cancelled
api GET "/api/v1/jobs/$pending"
expect_json .status cancelled
expect_jq '.finished_at != null' "finished_at set"

begin "cancel it again: 409"
api POST "/api/v1/jobs/$pending/cancel" '{}'
expect_problem 409

begin "retry the cancelled job: 202 pending"
api POST "/api/v1/jobs/$pending/retry" '{}'
expect_status 202
expect_json .status pending
expect_json .id "$pending"

begin "retry a pending job: 409"
api POST "/api/v1/jobs/$pending/retry" '{}'
expect_problem 409
api POST "/api/v1/jobs/$pending/cancel" '{}'
expect_status 200

begin "a completed job: cancel and retry give 409"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}]}" || note "POST /jobs: $STATUS"
done_job=$JOB_ID
if wait_job "$done_job" 120; then
    expect_json .status completed
    out_media=$(jqr '.outputs[0].media_id')
    api POST "/api/v1/jobs/$done_job/cancel" '{}'
    expect_problem 409
    api POST "/api/v1/jobs/$done_job/retry" '{}'
    expect_problem 409

    begin "delete a completed job: 204, its outputs go too"
    api GET "/api/v1/media/$out_media/download"
    loc=$(hdr Location)
    obj=$(object_path "$loc")
    check "the output object is not on disk at $obj" test -f "$obj"
    api DELETE "/api/v1/jobs/$done_job"
    expect_status 204
    api GET "/api/v1/jobs/$done_job"
    expect_problem 404
    api GET "/api/v1/media/$out_media"
    expect_problem 404
    check "the output object is still on disk" test ! -e "$(object_path "$loc")"
    api DELETE "/api/v1/jobs/$done_job"
    expect_problem 404
fi

begin "cancel a processing job: cancelled within 2 s"
# Long enough to be caught running: the sample scaled to 4K and encoded
# with the slowest HEVC preset takes minutes on a small machine.
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"video_codec\":\"hevc\",\"preset\":\"veryslow\",\"width\":3840,\"height\":2160},\"layers\":[{\"type\":\"text\",\"text\":\"slow\"}]}" ||
    note "POST /jobs: $STATUS $(printf '%.200s' "$BODY")"
slow=$JOB_ID
_processing() { api GET "/api/v1/jobs/$slow"; [[ $(jqr .status) != pending ]]; }
if wait_until 60 _processing && [[ $(jqr .status) == processing ]]; then
    t0=$(date +%s.%N)
    api POST "/api/v1/jobs/$slow/cancel" '{}'
    expect_status 200
    _cancelled() { api GET "/api/v1/jobs/$slow"; [[ $(jqr .status) == cancelled ]]; }
    if wait_until 10 _cancelled; then
        t1=$(date +%s.%N)
        check "cancelled after $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s, expected within 2 s (+0.5 polling)" \
            awk -v a="$t0" -v b="$t1" 'BEGIN{exit !(b-a <= 2.5)}'
        expect_json .outputs '[]'
    else
        note "status $(jqr .status) 10 s after cancel"
    fi
else
    note "the job never showed as processing (status $(jqr .status))"
    api POST "/api/v1/jobs/$slow/cancel" '{}'
fi

begin "the worker takes the next job after a cancel"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}]}" || note "POST /jobs: $STATUS"
if wait_job "$JOB_ID" 120; then
    expect_json .status completed
fi

finish
