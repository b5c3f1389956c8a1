#!/usr/bin/env bash
# Lifecycle rules around the faults: per-user concurrency, dead letters
# (kadrctl dlq) and the admin queue endpoint, cancellation of a running job,
# retention.
. ./lib.sh

KEY=$(new_admin limits) || exit 1
admin_key=$KEY
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end
uid=$(sql "SELECT user_id FROM media WHERE id = '$media'")
ctl() { "$KADR_BIN/kadrctl" --config "$KADR_CONFIG" "$@"; }

begin "per-user concurrency: one slot for this user; another user's job does not wait behind"
other_key=$(new_admin limits-other) || note "second user"
KEY=$other_key
sample_media
other_media=$MEDIA_ID
KEY=$admin_key
sql "UPDATE users SET max_processing = 1 WHERE id = '$uid'" >/dev/null
mine=()
for ((i = 0; i < 3; i++)); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
        note "POST /jobs: $STATUS"
    mine+=("$JOB_ID")
done
KEY=$other_key
submit_job "{\"inputs\":[{\"media_id\":\"$other_media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90}}" ||
    note "POST /jobs (other user): $STATUS"
other=$JOB_ID
KEY=$admin_key
ids=$(printf "'%s'," "${mine[@]}")
most=0
deadline=$((SECONDS + 120))
until all_jobs_final "${mine[@]}" "$other" || ((SECONDS > deadline)); do
    n=$(sql "SELECT count(*) FROM jobs WHERE id IN (${ids%,}) AND status = 'processing'")
    ((n > most)) && most=$n
    sleep 0.1
done
check "the user had $most jobs processing at once" test "$most" -eq 1
check "not all of the user's jobs completed" test "$(jobs_in completed "${mine[@]}")" -eq 3
check "the other user's job waited for this user's jobs" \
    test "$(sql "SELECT count(*) FROM jobs WHERE id IN (${ids%,}) AND started_at > (SELECT started_at FROM jobs WHERE id = '$other')")" -ge 1
sql "UPDATE users SET max_processing = NULL WHERE id = '$uid'" >/dev/null

begin "the admin queue endpoint: 200 for an admin, 403 for a user"
api GET /api/v1/admin/queue
expect_status 200
expect_jq '(.queues | length) == 10 and (.jobs.pending | type) == "number" and .workers_online >= 1 and (.workers | length) >= 1' \
    "not the queue view"
KEY=$(new_user plain) || note "plain user"
api GET /api/v1/admin/queue
expect_problem 403
KEY=$admin_key

begin "dead letter: the last attempt's child killed; kadrctl dlq list, show, requeue"
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"},\"max_attempts\":1}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
_child() {
    local w
    [[ $(sql "SELECT status FROM jobs WHERE id = '$job'") == processing ]] || return 1
    for w in $(stack_pids worker-1.pid); do
        child=$(pgrep -P "$w" | head -n 1)
        [[ -n $child ]] && return 0
    done
    return 1
}
if wait_until 60 _child; then
    kill -KILL "$child"
    if wait_job "$job" 60; then
        expect_json .status failed
        expect_json .error.code internal
        check "dlq list does not name the job" grep -q "$job" <(ctl dlq list)
        check "dlq list --json" test "$(ctl dlq list --json | jq --arg j "$job" '[.[] | select(.job_id == $j)] | length')" -eq 1
        check "dlq show" test "$(ctl dlq show "$job" | jq -r '.job.status + " " + .code')" == "failed internal"
        api GET /api/v1/admin/queue
        expect_jq '.dead_letters >= 1' "no dead letter counted"
        check "dlq requeue" grep -q "requeued 1 job" <(ctl dlq requeue "$job")
        check "the requeued job is still a dead letter" test "$(ctl dlq list --json | jq --arg j "$job" '[.[] | select(.job_id == $j)] | length')" -eq 0
        if wait_job "$job" 60; then
            expect_json .status completed
            expect_json .attempts 1
        fi
        check "dlq purge" grep -q "purged" <(ctl dlq purge --all)
        check "dlq show of a purged job succeeded" bash -c "! '$KADR_BIN/kadrctl' --config '$KADR_CONFIG' dlq show $job >/dev/null 2>&1"
    fi
else
    note "the job's child never showed"
fi

begin "cancel a running job: stopped within a second, its work directory removed"
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"width\":1280,\"height\":720,\"preset\":\"veryslow\"}}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
_progress() { [[ $(sql "SELECT progress > 0 FROM jobs WHERE id = '$job' AND status = 'processing'") == t ]]; }
if wait_until 60 _progress; then
    api GET "/api/v1/jobs/$job"
    expect_jq '(.eta_seconds | type) == "number" and .eta_seconds >= 0 and .queue_position == null' \
        "a processing job with progress has no eta_seconds"
    t0=$(date +%s%3N)
    api POST "/api/v1/jobs/$job/cancel" '{}'
    _cancelled() { [[ $(sql "SELECT status FROM jobs WHERE id = '$job'") == cancelled ]]; }
    wait_until 10 _cancelled
    ms=$(($(date +%s%3N) - t0))
    check "cancelled after $ms ms" test "$ms" -lt 1500
    _no_dir() { ! compgen -G "$KADR_STACK_DIR/tmp/worker/$job-*" >/dev/null; }
    check "the work directory is left: $(ls -d "$KADR_STACK_DIR/tmp/worker/$job"-* 2>/dev/null)" wait_until 10 _no_dir
else
    note "the job made no progress"
fi

begin "retention: media past retention_days is deleted from storage and marked expired"
upload_file "$E2E_MEDIA/sample.mp4" video/mp4 old.mp4 && wait_media "$MEDIA_ID" 60
old=$MEDIA_ID
key=$(sql "SELECT storage_key FROM media WHERE id = '$old'")
# object_path: on disk, or fetched from S3 by the AWS CLI (empty when gone)
check "the object is not there to start with" test -s "$(object_path "$key")"
sql "UPDATE media SET created_at = now() - interval '8 days' WHERE id = '$old'" >/dev/null
_expired() { api GET "/api/v1/media/$old"; [[ $(jqr .status) == expired ]]; }
check "not expired: $(jqr .status)" wait_until 30 _expired
check "the object is still stored" test ! -e "$(object_path "$key")"

finish
