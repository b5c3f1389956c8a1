#!/usr/bin/env bash
# Two users: B sees none of A's objects and can change none of them; an
# id of another user's object behaves as a missing one.
. ./lib.sh

KEY_A=$(new_user iso-a) || exit 1
KEY_B=$(new_user iso-b) || exit 1

KEY=$KEY_A
begin "setup: A's media and job"
sample_media || { finish; exit 1; }
media_a=$MEDIA_ID
upload_a=$UPLOAD_ID
submit_job "{\"inputs\":[{\"media_id\":\"$media_a\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}" || note "POST /jobs: $STATUS"
job_a=$JOB_ID
end

KEY=$KEY_B
begin "B gets 404 for A's media"
api GET "/api/v1/media/$media_a"
expect_problem 404
api GET "/api/v1/media/$media_a/download"
expect_problem 404

begin "B gets 404 for A's job and its events"
api GET "/api/v1/jobs/$job_a"
expect_problem 404
api GET "/api/v1/jobs/$job_a/events"
expect_problem 404

begin "B cannot cancel, retry or delete A's job"
api POST "/api/v1/jobs/$job_a/cancel" '{}'
expect_problem 404
api POST "/api/v1/jobs/$job_a/retry" '{}'
expect_problem 404
api DELETE "/api/v1/jobs/$job_a"
expect_problem 404

begin "B cannot delete A's media or complete A's upload"
api DELETE "/api/v1/media/$media_a"
expect_problem 404
api POST "/api/v1/uploads/$upload_a/complete" '{}'
expect_problem 404

begin "B's lists hold nothing of A's"
api GET /api/v1/media
expect_status 200
jq -e --arg id "$media_a" 'all(.items[]; .id != $id)' >/dev/null <<<"$BODY" || note "A's media in B's list"
api GET /api/v1/jobs
jq -e --arg id "$job_a" 'all(.items[]; .id != $id)' >/dev/null <<<"$BODY" || note "A's job in B's list"

begin "B cannot use A's media in a job: 422 naming the field"
api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$media_a\"}]}"
expect_field_error "inputs[0].media_id"

KEY=$KEY_A
begin "A's objects are untouched"
api GET "/api/v1/media/$media_a"
expect_status 200
expect_json .status ready
api GET "/api/v1/jobs/$job_a"
expect_status 200
expect_json .status pending
api POST "/api/v1/jobs/$job_a/cancel" '{}'
expect_status 200

finish
