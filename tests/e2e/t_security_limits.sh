#!/usr/bin/env bash
# Plan limits (doc/security.md): each answers 429 with Retry-After and a
# problem naming the limit at exactly the configured count. run.sh gives
# the premium plan small limits (3 jobs per hour, 2 unfinished uploads,
# 1000000 bytes of storage) and the free plan, which every other case
# uses, limits it never meets.
. ./lib.sh

U=/api/v1

premium_user() {
    local out
    out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --plan premium \
        --email "$1-$RANDOM$RANDOM@e2e.test" --api-key 2>&1) || { echo "kadrctl: $out" >&2; return 1; }
    sed -n 's/^api_key: *//p' <<<"$out" | head -n 1
}

upload_req() { jq -cn --argjson s "$1" '{filename: "x.mp4", size: $s, content_type: "video/mp4"}'; }

expect_limit() { # expect_limit NAME: a 429 naming the limit, with Retry-After
    expect_problem 429 || return 1
    expect_header Retry-After '[1-9]*'
    expect_jq ".detail | test(\"$1\")" "the problem does not name $1"
}

begin "GET /me shows the premium plan's limits"
KEY=$(premium_user lim-me) || note "no user"
api GET $U/me
expect_status 200
expect_json .plan premium
expect_json .limits.jobs_per_hour 3
expect_json .limits.concurrent_uploads 2
expect_json .limits.storage_bytes 1000000
expect_jq '.limits.concurrent_processing | type == "number" and . >= 1'

begin "concurrent uploads: the 3rd unfinished upload is 429"
KEY=$(premium_user lim-up) || note "no user"
for i in 1 2; do
    api POST $U/uploads "$(upload_req 1000)"
    [[ $STATUS == 201 ]] || note "upload $i: status $STATUS $(printf '%.200s' "$BODY")"
done
api POST $U/uploads "$(upload_req 1000)"
expect_limit concurrent_uploads
api GET $U/me
expect_json .usage.uploads_in_progress 2

begin "storage: exactly the quota is allowed, one byte more is 429"
KEY=$(premium_user lim-st) || note "no user"
api POST $U/uploads "$(upload_req 1000001)"
expect_limit storage_bytes
api POST $U/uploads "$(upload_req 1000000)"
expect_status 201
api POST $U/uploads "$(upload_req 1)"
expect_limit storage_bytes

begin "jobs per hour: the 4th job within the hour is 429"
KEY=$(premium_user lim-jobs) || note "no user"
sample_media || note "no sample media"
job="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
for i in 1 2 3; do
    api POST $U/jobs "$job" -H "Idempotency-Key: lim-$i"
    [[ $STATUS == 202 ]] || note "job $i: status $STATUS $(printf '%.200s' "$BODY")"
    [[ $i == 1 ]] && first=$(jqr .id)
    [[ $i == 3 ]] && third=$(jqr .id)
done
api POST $U/jobs "$job"
expect_limit jobs_per_hour
ra=$(hdr Retry-After)
check "Retry-After $ra is not within the hour" test "${ra:-0}" -le 3600

begin "jobs per hour: a replay of an Idempotency-Key is no new job, so no 429"
api POST $U/jobs "$job" -H "Idempotency-Key: lim-3"
expect_status 202
expect_json .id "$third"
api POST $U/jobs "$job" -H "Idempotency-Key: lim-4"
expect_limit jobs_per_hour

begin "jobs per hour: deleting a job does not give it back"
api DELETE "$U/jobs/$first"
expect_status 204
api POST $U/jobs "$job"
expect_limit jobs_per_hour

begin "an invalid job is refused for itself, not counted"
KEY=$(premium_user lim-inv) || note "no user"
for i in 1 2 3 4; do
    api POST $U/jobs '{"inputs":[]}'
    [[ $STATUS == 422 ]] || note "invalid job $i: status $STATUS"
done
api GET $U/me
expect_json .usage.jobs_last_hour 0

finish
