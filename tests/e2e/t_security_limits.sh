#!/usr/bin/env bash
# Plan limits (doc/security.md): each answers 429 with Retry-After and a
# problem naming the limit at exactly the configured count. run.sh gives
# the premium plan small limits (3 jobs per hour, 2 unfinished uploads,
# 1000000 bytes of storage) and the free plan, which every other case
# uses, limits it never meets. The last cases restart the API with the
# built-in free limit (5) and cap (100) and meet both exactly.
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

begin "jobs per hour: a retry is a new run and counts; at the limit it is 429"
KEY=$(premium_user lim-retry) || note "no user"
sample_media || note "no sample media"
job="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
submit_job "$job" || note "job: status $STATUS $(printf '%.200s' "$BODY")"
jid=$JOB_ID
for i in 2 3; do
    api POST "$U/jobs/$jid/cancel"
    [[ $STATUS == 200 ]] || note "cancel $i: status $STATUS"
    api POST "$U/jobs/$jid/retry"
    [[ $STATUS == 202 ]] || note "retry $i: status $STATUS $(printf '%.200s' "$BODY")"
done
api GET $U/me
expect_json .usage.jobs_last_hour 3
api POST "$U/jobs/$jid/cancel"
expect_status 200
api POST "$U/jobs/$jid/retry"
expect_limit jobs_per_hour
api GET "$U/jobs/$jid"
expect_json .status cancelled
api POST $U/jobs "$job"
expect_limit jobs_per_hour
# An Idempotency-Key is no way around it on a retry.
api POST "$U/jobs/$jid/retry" - -H "Idempotency-Key: lim-retry"
expect_limit jobs_per_hour

begin "a retry the API refuses anyway answers for itself at the limit (404, 409)"
other=$jid
KEY2=$KEY
KEY=$(premium_user lim-retry2) || note "no user"
sample_media || note "no sample media"
job2="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
for i in 1 2 3; do submit_job "$job2" || note "job $i: status $STATUS"; done
api POST "$U/jobs/$JOB_ID/retry"
expect_problem 409
api POST "$U/jobs/$other/retry"
expect_problem 404
KEY=$KEY2

begin "storage: a user at the quota can start no job (POST /jobs and retry are 429)"
KEY=$(premium_user lim-st-job) || note "no user"
sample_media || note "no sample media"
size=$(stat -c %s "$E2E_MEDIA/sample.mp4")
job="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
submit_job "$job" || note "job: status $STATUS $(printf '%.200s' "$BODY")"
jid=$JOB_ID
api POST "$U/jobs/$jid/cancel"
expect_status 200
# An unfinished upload takes the rest: exactly at the quota.
api POST $U/uploads "$(upload_req $((1000000 - size)))"
expect_status 201
filler=$(jqr .media_id)
api GET $U/me
expect_json .usage.storage_bytes 1000000
api POST $U/jobs "$job"
expect_limit storage_bytes
api POST "$U/jobs/$jid/retry"
expect_limit storage_bytes
api GET $U/me
expect_json .usage.jobs_last_hour 1
# One byte below the quota, a job may start again.
api DELETE "$U/media/$filler"
expect_status 204
api POST $U/uploads "$(upload_req $((1000000 - size - 1)))"
expect_status 201
api POST "$U/jobs/$jid/retry"
expect_status 202
submit_job "$job" || note "a job below the quota: status $STATUS $(printf '%.200s' "$BODY")"

begin "storage: a job whose outputs would pass the quota fails (limit_exceeded) and publishes nothing"
KEY=$(premium_user lim-st-out) || note "no user"
sample_media || note "no sample media"
size=$(stat -c %s "$E2E_MEDIA/sample.mp4")
# 1000 bytes below the quota: the job may start, its outputs cannot fit.
api POST $U/uploads "$(upload_req $((1000000 - size - 1000)))"
expect_status 201
n_objects() {
    if [[ ${E2E_STORAGE:-local} == s3 ]]; then
        find "$E2E_S3_DATA" -type f | wc -l
    else
        find "$KADR_STORAGE/objects/media" -type f | wc -l
    fi
}
before=$(n_objects)
submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"thumbnails\":{\"count\":1}}" ||
    note "job: status $STATUS $(printf '%.200s' "$BODY")"
jid=$JOB_ID
if wait_job "$jid" 120; then
    expect_json .status failed
    expect_json .error.code limit_exceeded
    expect_jq '.error.message | test("storage_bytes")' "the error does not name storage_bytes"
    expect_jq '(.outputs // []) | length == 0' "the failed job lists outputs"
    expect_json .attempts 1
    check "output media rows: $(sql "SELECT count(*) FROM media WHERE source_job_id = '$jid'")" \
        test "$(sql "SELECT count(*) FROM media WHERE source_job_id = '$jid'")" -eq 0
    _objects_back() { [[ $(n_objects) -eq $before ]]; }
    check "stored outputs left behind: $before before, $(n_objects) after" wait_until 10 _objects_back
    api GET $U/me
    expect_json .usage.storage_bytes $((1000000 - 1000))
fi

begin "an invalid job is refused for itself, not counted"
KEY=$(premium_user lim-inv) || note "no user"
for i in 1 2 3 4; do
    api POST $U/jobs '{"inputs":[]}'
    [[ $STATUS == 422 ]] || note "invalid job $i: status $STATUS"
done
api GET $U/me
expect_json .usage.jobs_last_hour 0

# ------------------------------------------------ the built-in job limits
# The API again with the free plan's default (5 jobs an hour) and the
# default cap (100), which binds the premium plan once that is set above it.
restart_api() { # restart_api [VAR=VALUE...]: the stack's API processes with those settings
    local p
    for p in $(stack_pids api.pid); do stop_pid "$p" TERM 30 || note "API process $p does not stop"; done
    env "$@" "$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" >>"$E2E_TMP/restart.log" 2>&1 ||
        note "stack.sh start failed: $(tail -n 5 "$E2E_TMP/restart.log")"
    wait_until 30 bash -c '[[ $(curl -s -o /dev/null -w "%{http_code}" "$1") == 200 ]]' _ \
        "$KADR_URL$U/health" || note "the API does not answer after the restart"
}

begin "setup: the API with plan_free_jobs_per_hour 5 and jobs_per_hour_cap 100"
restart_api KADR_PLAN_FREE_JOBS_PER_HOUR=5 KADR_JOBS_PER_HOUR_CAP=100 \
    KADR_PLAN_PREMIUM_JOBS_PER_HOUR=1000

begin "the free plan: the 6th job within the hour is 429"
KEY=$(new_user lim-free) || note "no user"
api GET $U/me
expect_json .limits.jobs_per_hour 5
sample_media || note "no sample media"
job="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
for i in 1 2 3 4 5; do
    submit_job "$job" || note "job $i: status $STATUS $(printf '%.200s' "$BODY")"
done
api POST $U/jobs "$job"
expect_limit jobs_per_hour
expect_jq '.detail | test("allows 5 ")' "the problem does not say 5"

begin "the cap binds a plan set above it: the 101st job within the hour is 429"
KEY=$(premium_user lim-cap) || note "no user"
api GET $U/me
expect_json .limits.jobs_per_hour 100
sample_media || note "no sample media"
job="{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
n=0
for i in $(seq 1 100); do
    api POST $U/jobs "$job"
    [[ $STATUS == 202 ]] && n=$((n + 1))
done
check "$n of 100 jobs accepted" test "$n" == 100
api POST $U/jobs "$job"
expect_limit jobs_per_hour
expect_jq '.detail | test("allows 100 ")' "the problem does not say 100"
ra=$(hdr Retry-After)
check "Retry-After $ra is not within the hour" test "${ra:-0}" -ge 1 -a "${ra:-0}" -le 3600
api GET $U/me
expect_json .usage.jobs_last_hour 100

begin "an admin has no job limit"
KEY=$(new_admin lim-admin) || note "no user"
api GET $U/me
expect_json .limits.jobs_per_hour null

begin "teardown: the API with the suite's settings again"
restart_api
KEY=$(new_user lim-after) || note "no user"
api GET $U/me
expect_json .limits.jobs_per_hour 100000

finish
