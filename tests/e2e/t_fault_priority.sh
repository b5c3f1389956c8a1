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
fault_cleanup

finish
