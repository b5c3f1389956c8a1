#!/usr/bin/env bash
# Fault 6: priorities: with the only worker busy, ten jobs of mixed
# priority are queued; they start in priority order.
. ./lib.sh

KEY=$(new_admin fault6) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "fault 6: ten queued jobs of mixed priority start most urgent first"
stop_stack_workers
start_worker fault-prio KADR_WORKER_SLOTS=1
pw=$WORKER_PID
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"width\":1280,\"height\":720,\"preset\":\"veryslow\"}}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
busy=$JOB_ID
_busy() { [[ $(sql "SELECT status FROM jobs WHERE id = '$busy'") == processing ]]; }
if wait_until 60 _busy; then
    jobs=()
    for p in 6 3 9 1 10 4 7 2 8 5; do
        submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90},\"priority\":$p}" ||
            fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
        jobs+=("$JOB_ID")
    done
    # Nine of them are ahead of the priority-10 one, none of the priority-1
    # one (whatever else waits counts for both alike).
    api GET "/api/v1/jobs/${jobs[3]}"
    q1=$(jqr .queue_position)
    api GET "/api/v1/jobs/${jobs[4]}"
    q10=$(jqr .queue_position)
    _nine_ahead() { [[ $q1 =~ ^[0-9]+$ && $q10 =~ ^[0-9]+$ ]] && ((q10 - q1 == 9)); }
    check "queue_position $q1 (priority 1) and $q10 (priority 10)" _nine_ahead
    api GET "/api/v1/jobs/$busy"
    expect_json .queue_position null
    api POST "/api/v1/jobs/$busy/cancel" '{}'
    if wait_until 120 all_jobs_final "${jobs[@]}"; then
        ids=$(printf "'%s'," "${jobs[@]}")
        order=$(sql "SELECT string_agg(priority::text, ' ' ORDER BY started_at) FROM jobs WHERE id IN (${ids%,})")
        check "started in the order $order" test "$order" == "1 2 3 4 5 6 7 8 9 10"
    else
        note "the ten jobs did not all end"
    fi
else
    note "the busy job never started"
fi

# Anti-starvation: with queue_aging_s = 1 a priority-10 job that waited 6 s
# competes as priority 4, so it starts before a priority-6 job submitted
# after it (strict priorities alone would start the priority-6 one first).
begin "anti-starvation: a long-waiting priority-10 job overtakes a newer priority-6 one"
for p in $(stack_pids scheduler.pid); do stop_pid "$p" TERM 30; done
start_scheduler KADR_QUEUE_AGING_S=1
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"width\":1280,\"height\":720,\"preset\":\"veryslow\"}}" ||
    fault_abort "POST /jobs: $STATUS"
busy=$JOB_ID
if wait_until 60 _busy; then
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90},\"priority\":10}" ||
        fault_abort "POST /jobs: $STATUS"
    old=$JOB_ID
    _aged() { [[ $(sql "SELECT pushed_priority <= 4 FROM jobs WHERE id = '$old'") == t ]]; }
    check "the waiting job was not pushed at a raised priority" wait_until 30 _aged
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90},\"priority\":6}" ||
        fault_abort "POST /jobs: $STATUS"
    new=$JOB_ID
    api POST "/api/v1/jobs/$busy/cancel" '{}'
    if wait_until 60 all_jobs_final "$old" "$new"; then
        check "the priority-6 job started first" \
            test "$(sql "SELECT (SELECT started_at FROM jobs WHERE id = '$old') < (SELECT started_at FROM jobs WHERE id = '$new')")" == t
        api GET "/api/v1/jobs/$old"
        expect_json .priority 10
    else
        note "the two jobs did not end"
    fi
else
    note "the busy job never started"
fi
fault_cleanup

finish
