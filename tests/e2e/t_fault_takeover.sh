#!/usr/bin/env bash
# Fault 1: a worker killed (kill -9) in the middle of each of 20 jobs while
# another worker runs: once the lease runs out the job is taken over, all
# 20 complete, and each registers its output once.
. ./lib.sh

KEY=$(new_admin fault1) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

# Two workers of one slot with a 1.5 s lease (renewed every 250 ms, and
# statements that give up after 1 s), so that takeover is quick; the
# stack's own worker is stopped meanwhile so that every job runs on one of
# them.
conf=(KADR_JOB_LEASE_MS=1500 KADR_WORKER_HEARTBEAT_MS=250 KADR_WORKER_DB_TIMEOUT_MS=1000
    KADR_WORKER_SLOTS=1 KADR_QUEUE_CLAIM_IDLE_MS=2000)
declare -A pid=()
begin "fault 1: kill -9 the worker in the middle of each of 20 jobs: all complete, outputs once"
stop_stack_workers
start_worker fault-a "${conf[@]}"
pid[fault-a]=$WORKER_PID
start_worker fault-b "${conf[@]}"
pid[fault-b]=$WORKER_PID
submit() {
    # About two seconds of encoding: long enough to be caught running.
    submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"},\"max_attempts\":5}" ||
        fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
    jobs+=("$JOB_ID")
}
jobs=()
for ((i = 0; i < 20; i++)); do submit; done
declare -A killed=()
deadline=$((SECONDS + 240))
while ((${#killed[@]} < 20 && SECONDS < deadline)); do
    ids=$(printf "'%s'," "${jobs[@]}")
    ids=${ids%,}
    # A first attempt that has run a little while, not killed already (it
    # shows processing until taken over): kill its worker.
    done_ids=$(printf "'%s'," "${!killed[@]}" "00000000-0000-0000-0000-000000000000")
    row=$(sql "SELECT id, worker FROM jobs WHERE id IN ($ids) AND status = 'processing'
               AND id NOT IN (${done_ids%,}) AND attempts = 1 AND worker IN ('fault-a', 'fault-b')
               AND started_at < now() - interval '300 milliseconds' ORDER BY started_at LIMIT 1")
    if [[ -z $row ]]; then
        # A job that ran its first attempt to the end before it could be
        # caught does not count: another one takes its place.
        waiting=$(sql "SELECT count(*) FROM jobs WHERE id IN ($ids) AND attempts <= 1
                       AND status IN ('pending', 'processing') AND id NOT IN (${done_ids%,})")
        ((${#killed[@]} + waiting < 20)) && submit
        sleep 0.1
        continue
    fi
    job=${row%%|*}
    w=${row#*|}
    kill -KILL "${pid[$w]}" 2>/dev/null
    wait_until 10 gone "${pid[$w]}" || note "worker $w outlived kill -9"
    killed[$job]=1
    start_worker "$w" "${conf[@]}"
    pid[$w]=$WORKER_PID
done
n=${#jobs[@]}
ids=$(printf "'%s'," "${jobs[@]}")
ids=${ids%,}
check "only ${#killed[@]} jobs were caught running" test "${#killed[@]}" -eq 20
check "not every job ended within the time" wait_until 240 all_jobs_final "${jobs[@]}"
check "not all $n completed: $(sql "SELECT status, count(*) FROM jobs WHERE id IN ($ids) GROUP BY 1")" \
    test "$(jobs_in completed "${jobs[@]}")" -eq "$n"
check "a killed job was not counted as a new attempt" \
    test "$(sql "SELECT count(*) FROM jobs WHERE id IN ($ids) AND attempts >= 2")" -ge "${#killed[@]}"
check "outputs registered more than once: $(sql "SELECT count(*) FROM job_outputs WHERE job_id IN ($ids)")" \
    test "$(sql "SELECT count(*) FROM job_outputs WHERE job_id IN ($ids)")" -eq "$n"
check "output media rows: $(sql "SELECT count(*) FROM media WHERE source_job_id IN ($ids)")" \
    test "$(sql "SELECT count(*) FROM media WHERE source_job_id IN ($ids)")" -eq "$n"
check "a job completed more than once" \
    test "$(sql "SELECT count(*) FROM job_events WHERE job_id IN ($ids) AND event = 'completed'")" -eq "$n"
fault_cleanup

# The takeover's condition is checked again by PostgreSQL when the claim is
# written, not only when the row was read: a holder that renews its lease
# in between keeps the job. To make that happen on purpose, a job is made
# to look held by a worker "ghost" whose lease ran out, a psql session
# renews the lease in a transaction it keeps open (so the worker reads it
# expired, then waits for the row where it claims), and commits while the
# worker waits. The worker's statements give up after 4 s here, time
# enough for what the cases do while it waits. The scheduler is stopped
# meanwhile: the cases push the job themselves.
trap 'release_held ROLLBACK; rm -f "$E2E_HDRS" "$E2E_OUT"' EXIT
stop_stack_workers
for p in $(stack_pids scheduler.pid); do stop_pid "$p" TERM 30; done
t1() { start_worker fault-t1 KADR_WORKER_SLOTS=1 KADR_WORKER_DB_TIMEOUT_MS=4000; t1_pid=$WORKER_PID; }
t1
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\"}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
job=$JOB_ID
ghost() {
    sql "UPDATE jobs SET status = 'processing', run_at = NULL, worker = 'ghost', attempts = $1,
                lease_gen = lease_gen + 1, started_at = now(),
                lease_expires_at = now() - interval '1 second' WHERE id = '$job'" >/dev/null
}
held_by_ghost() { sql "SELECT worker || ' ' || status || ' ' || attempts FROM jobs WHERE id = '$job'"; }

begin "takeover: a lease renewed between the read and the claim stays with its holder"
# The API's push of it must be gone (read and acknowledged: it is not due)
# before the job is made to look taken: every delivery below is the case's.
wait_until 30 no_entries "$job" || note "the job's first delivery was never taken"
ghost 1
gen=$(sql "SELECT lease_gen FROM jobs WHERE id = '$job'")
hold_open "UPDATE jobs SET lease_expires_at = now() + interval '1 hour' WHERE id = '$job';"
push_edit "$job"
claiming='UPDATE jobs SET status = %processing%'
if wait_until 20 lock_waiter "$claiming"; then
    # Meanwhile the claim's transaction holds the user's row: the user's
    # own inserts (here an upload: its media row refers to the user) must
    # not wait for it (FOR NO KEY UPDATE, not FOR UPDATE).
    t0=$(date +%s%3N)
    api POST /api/v1/uploads '{"filename":"x.mp4","size":1000,"content_type":"video/mp4"}'
    ms=$(($(date +%s%3N) - t0))
    expect_status 201
    check "an upload of the user waited $ms ms for the worker's claim" test "$ms" -lt 1000
    check "the claim gave up waiting before the lease was renewed" lock_waiter "$claiming"
    release_held COMMIT
    sleep 2
    check "taken over from a live holder: $(held_by_ghost)" test "$(held_by_ghost)" == "ghost processing 1"
    check "the lease generation changed" test "$(sql "SELECT lease_gen FROM jobs WHERE id = '$job'")" == "$gen"
else
    note "the worker never came to claim the job"
fi
release_held ROLLBACK

begin "takeover out of attempts: a lease renewed meanwhile is not failed as a dead letter"
# The first case's delivery is still the worker's (a live holder keeps
# it) and comes back by itself: the worker is stopped until the row is
# held, so that whichever delivery it reads meets the held row.
stop_pid "$t1_pid" TERM 30
ghost 3
hold_open "UPDATE jobs SET lease_expires_at = now() + interval '1 hour' WHERE id = '$job';"
t1
push_edit "$job"
if wait_until 20 lock_waiter 'UPDATE jobs SET status = %'; then
    release_held COMMIT
    sleep 2
    check "failed from a live holder: $(held_by_ghost)" test "$(held_by_ghost)" == "ghost processing 3"
    check "a dead letter was recorded" \
        test "$(sql "SELECT count(*) FROM dead_letters WHERE job_id = '$job'")" -eq 0
else
    note "the worker never came to fail the job"
fi
release_held ROLLBACK

begin "takeover of an expired lease: lease_expired names the lost attempt, then the job completes"
ghost 1
push_edit "$job"
if wait_job "$job" 60; then
    expect_json .status completed
    expect_json .attempts 2
    api GET "/api/v1/jobs/$job/events"
    expect_jq '[.items[] | select(.event == "lease_expired")] | length == 1 and
               (.[0].detail.attempt == 1 and .[0].detail.worker == "ghost")' \
        "no lease_expired {attempt: 1, worker: ghost} event"
    expect_jq '[.items[] | .event] | index("lease_expired") < index("completed")' \
        "lease_expired is not before completed"
fi
fault_cleanup

finish
