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

# Two workers of one slot with a 1.5 s lease, so that takeover is quick;
# the stack's own worker is stopped meanwhile so that every job runs on one
# of them.
conf=(KADR_JOB_LEASE_MS=1500 KADR_WORKER_SLOTS=1 KADR_QUEUE_CLAIM_IDLE_MS=2000)
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

finish
