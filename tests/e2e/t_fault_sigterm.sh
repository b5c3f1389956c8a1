#!/usr/bin/env bash
# Fault 5: SIGTERM to a worker in the middle of a job (grace period 0): the
# job is handed back and completes on the other worker at once, not after
# its lease (60 s here) runs out.
. ./lib.sh

KEY=$(new_admin fault5) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "fault 5: SIGTERM a worker mid-job: the other worker completes it without waiting for the lease"
stop_stack_workers
start_worker fault-term KADR_WORKER_GRACE_S=0 KADR_JOB_LEASE_MS=60000 KADR_WORKER_SLOTS=1
pa=$WORKER_PID
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
job=$JOB_ID
_on_a() {
    [[ $(sql "SELECT worker FROM jobs WHERE id = '$job' AND status = 'processing'
              AND started_at < now() - interval '300 milliseconds'") == fault-term ]]
}
if wait_until 60 _on_a; then
    start_worker fault-other KADR_WORKER_SLOTS=1
    pb=$WORKER_PID
    t0=$SECONDS
    stop_pid "$pa" TERM 30 || note "the worker did not stop"
    if wait_job "$job" 120; then
        expect_json .status completed
        expect_json .attempts 1
        check "took $((SECONDS - t0)) s: as if it waited for the lease" test $((SECONDS - t0)) -lt 40
        check "completed by $(sql "SELECT worker FROM jobs WHERE id = '$job'")" \
            test "$(sql "SELECT worker FROM jobs WHERE id = '$job'")" == fault-other
        api GET "/api/v1/jobs/$job/events"
        expect_jq '[.items[] | select(.event == "requeued")] | length == 1' "no requeued event"
    fi
else
    note "the job never ran on the first worker"
fi
fault_cleanup

finish
