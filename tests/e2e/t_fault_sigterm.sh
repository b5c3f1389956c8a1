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

begin "SIGTERM with a grace period: the running job completes on the same worker, nothing new is taken"
stop_stack_workers
glog=$KADR_STACK_DIR/logs/worker-fault-grace.log
: >"$glog"
start_worker fault-grace KADR_WORKER_GRACE_S=60 KADR_WORKER_SLOTS=1
pg=$WORKER_PID
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
job=$JOB_ID
_on_grace() {
    [[ $(sql "SELECT worker FROM jobs WHERE id = '$job' AND status = 'processing'
              AND started_at < now() - interval '300 milliseconds'") == fault-grace ]]
}
if wait_until 60 _on_grace; then
    kill -TERM "$pg"
    # Submitted while the worker drains: it must not take it.
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90}}" ||
        note "POST /jobs: $STATUS"
    later=$JOB_ID
    if wait_job "$job" 60; then
        expect_json .status completed
        expect_json .attempts 1
        check "completed by $(sql "SELECT worker FROM jobs WHERE id = '$job'")" \
            test "$(sql "SELECT worker FROM jobs WHERE id = '$job'")" == fault-grace
        api GET "/api/v1/jobs/$job/events"
        expect_jq '[.items[] | select(.event == "requeued")] | length == 0' "a requeued event"
    fi
    check "the worker did not exit after its job" wait_until 30 gone "$pg"
    check "no stop line in its log" grep -q '"worker: fault-grace stopped"' "$glog"
    check "the draining worker took the job submitted meanwhile" \
        test "$(sql "SELECT coalesce(worker, '-') || ' ' || status FROM jobs WHERE id = '$later'")" == "- pending"
else
    note "the job never ran on fault-grace"
fi
fault_cleanup
if [[ -n ${later:-} ]] && wait_job "$later" 60; then
    expect_json .status completed
fi

finish
