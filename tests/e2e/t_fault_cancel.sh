#!/usr/bin/env bash
# Cancels that race with the end of an attempt. The API answers a cancel of
# a processing job with "cancelling" (cancel_requested); whatever the
# attempt then comes to (a retryable failure, a success whose outputs are
# being stored, a hand-back at shutdown) the job must end cancelled, never
# pending for ever nor completed. To make the race happen on purpose, a
# psql session sets cancel_requested in a transaction it keeps open: the
# worker cannot see the flag (and waits for the row where it writes) until
# the case commits it at the moment it wants. The worker's statement
# timeout (worker_db_timeout_ms, 1 s here) keeps its loop going meanwhile.
. ./lib.sh

KEY=$(new_admin cancelrace) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end
trap 'release_held ROLLBACK; rm -f "$E2E_HDRS" "$E2E_OUT"' EXIT

stop_stack_workers
wlog=$KADR_STACK_DIR/logs/worker-fault-cx.log
: >"$wlog"
start_worker fault-cx KADR_WORKER_SLOTS=1 KADR_WORKER_DB_TIMEOUT_MS=1000
wpid=$WORKER_PID
slow_job() {
    submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
        fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
    job=$JOB_ID
}
# running_on W: the job is processing on worker W (and its child exists).
running_on() {
    [[ $(sql "SELECT worker FROM jobs WHERE id = '$job' AND status = 'processing'") == "$1" ]] &&
        [[ -n $(child_of "$wpid") ]]
}
# The cancelled event is the worker's (the scheduler's net says "by").
cancelled_by_worker() {
    [[ $(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'cancelled'
              AND detail->>'by' IS NULL AND (detail->>'attempt')::int = 1") == 1 ]]
}

begin "a cancel that lands while a retryable failure is written: cancelled, not pending"
slow_job
if wait_until 60 running_on fault-cx; then
    hold_open "UPDATE jobs SET cancel_requested = true WHERE id = '$job';"
    kill -KILL "$(child_of "$wpid")"
    # The failure cannot be written while the row is held: the worker's
    # statement times out, it says so and tries again later.
    _stuck() { grep -q "job $job: could not record the outcome (ETIMEOUT)" "$wlog"; }
    check "the worker never waited for the row (no statement timeout?)" wait_until 30 _stuck
    release_held COMMIT
    if wait_job "$job" 30; then
        expect_json .status cancelled
        check "events: $(events "$job")" test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'retrying'")" -eq 0
        check "no cancelled event of the worker's attempt 1: $(events "$job")" cancelled_by_worker
    fi
else
    note "the job never ran on fault-cx"
fi
release_held ROLLBACK

begin "a cancel that lands while the outputs are stored: cancelled, the stored objects deleted"
n_objects() { find "$KADR_STORAGE/objects/media" -type f 2>/dev/null | wc -l; }
before=$(n_objects)
slow_job
if wait_until 60 running_on fault-cx; then
    hold_open "UPDATE jobs SET cancel_requested = true WHERE id = '$job';"
    [[ $(sql "SELECT status FROM jobs WHERE id = '$job'") == processing ]] ||
        note "the job ended before the cancel was set up"
    # The child finishes, its outputs are stored, and the worker waits for
    # the row to commit them.
    check "the worker never came to commit the outputs" \
        wait_until 60 lock_waiter 'SELECT cancel_requested OR deleted_at IS NOT NULL FROM jobs%FOR NO KEY UPDATE'
    release_held COMMIT
    if wait_job "$job" 30; then
        expect_json .status cancelled
        expect_json '.outputs | length' 0
        check "events: $(events "$job")" test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'completed'")" -eq 0
        check "no cancelled event of the worker's attempt 1: $(events "$job")" cancelled_by_worker
        check "output media rows were registered" \
            test "$(sql "SELECT count(*) FROM media WHERE source_job_id = '$job'")" -eq 0
        if [[ ${E2E_STORAGE:-local} == local ]]; then
            _objects_back() { [[ $(n_objects) -eq $before ]]; }
            check "stored objects left behind: $before before, $(n_objects) after" wait_until 10 _objects_back
        fi
    fi
else
    note "the job never ran on fault-cx"
fi
release_held ROLLBACK

begin "a cancel that lands during the hand-back at shutdown: cancelled, not pending"
stop_pid "$wpid" TERM 60 || note "fault-cx did not stop"
start_worker fault-cy KADR_WORKER_SLOTS=1 KADR_WORKER_DB_TIMEOUT_MS=3000 KADR_WORKER_GRACE_S=0
wpid=$WORKER_PID
slow_job
if wait_until 60 running_on fault-cy; then
    hold_open "UPDATE jobs SET cancel_requested = true WHERE id = '$job';"
    kill -TERM "$wpid"
    # Waiting for the row to hand the job back (not in a heartbeat, whose
    # answer would tell the worker of the cancel the ordinary way).
    _handing_back() {
        lock_waiter 'SELECT cancel_requested OR deleted_at IS NOT NULL FROM jobs%FOR NO KEY UPDATE' ||
            lock_waiter "UPDATE jobs SET status = ''pending''%"
    }
    check "the stopping worker never came to hand the job back" wait_until 20 _handing_back
    release_held COMMIT
    check "the worker did not stop" wait_until 30 gone "$wpid"
    if wait_job "$job" 30; then
        expect_json .status cancelled
        check "events: $(events "$job")" test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'requeued'")" -eq 0
        check "no cancelled event of the worker's attempt 1: $(events "$job")" cancelled_by_worker
    fi
else
    note "the job never ran on fault-cy"
fi
release_held ROLLBACK

begin "the scheduler's net: a pending job with a cancel asked for is cancelled, with its event"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"run_at\":\"2099-01-01T00:00:00Z\"}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
sql "UPDATE jobs SET cancel_requested = true WHERE id = '$job'" >/dev/null
if wait_job "$job" 20; then
    expect_json .status cancelled
    expect_json .error.code cancelled
    check "no cancelled event by kadr-scheduler: $(events "$job")" \
        test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'cancelled' AND detail->>'by' = 'kadr-scheduler'")" -eq 1
fi
fault_cleanup

finish
