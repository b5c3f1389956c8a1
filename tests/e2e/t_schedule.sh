#!/usr/bin/env bash
# run_at: a job starts no earlier than its time, and does start then.
. ./lib.sh

KEY=$(new_user schedule) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "a job with run_at 4 s ahead waits, then runs"
at_s=$(($(date +%s) + 4))
run_at=$(date -u -d "@$at_s" +%Y-%m-%dT%H:%M:%SZ)
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"$run_at\"}" || note "POST /jobs: $STATUS"
job=$JOB_ID
expect_json .status pending
expect_jq '.run_at | startswith("'"${run_at%Z}"'")' "run_at echoed"
_started() { api GET "/api/v1/jobs/$job"; [[ $(jqr .status) != pending ]] || (( $(date +%s) >= at_s + 1 )); }
wait_until 10 _started
if (( $(date +%s) < at_s )); then
    note "the job left pending before its run_at: $(jqr .status)"
fi
if wait_job "$job" 20; then
    expect_json .status completed
    started=$(jqr .started_at)
    started_s=$(date -u -d "$started" +%s 2>/dev/null || echo 0)
    check "started_at $started is before run_at $run_at" test "$started_s" -ge "$at_s"
fi

begin "a job scheduled an hour ahead gets no queue entry until it is due"
run_at=$(date -u -d "@$(($(date +%s) + 3600))" +%Y-%m-%dT%H:%M:%SZ)
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"$run_at\"}" || note "POST /jobs: $STATUS"
job=$JOB_ID
sock=$KADR_STACK_DIR/redis/redis.sock
entries=0
for ((p = 1; p <= 10; p++)); do
    n=$(redis-cli -s "$sock" --raw XRANGE "kadr:q:$p" - + 2>/dev/null | grep -c -- "$job")
    entries=$((entries + n))
done
check "$entries queue entries name the scheduled job" test "$entries" -eq 0
check "the database holds it unqueued" test "$(sql "SELECT enqueued_at IS NULL FROM jobs WHERE id = '$job'")" == t
api POST "/api/v1/jobs/$job/cancel"
expect_status 200

finish
