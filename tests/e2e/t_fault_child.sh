#!/usr/bin/env bash
# Fault 2: a job's child process killed (kill -9): the attempt fails as
# internal, the job is retried after its backoff and completes.
. ./lib.sh

KEY=$(new_admin fault2) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "fault 2: kill -9 the job's child: retried, then completed"
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
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
    if wait_job "$job" 120; then
        expect_json .status completed
        expect_json .attempts 2
        api GET "/api/v1/jobs/$job/events"
        expect_jq '[.items[] | select(.event == "retrying")] | length == 1' "no retrying event"
        expect_jq '[.items[] | select(.event == "started")] | length == 2' "not two starts"
    fi
else
    note "the job's child never showed"
fi

# Several schedulers: one leads; when it dies (kill -9, no release), another
# takes the lead once the lock expires (5 s) and scheduled jobs still run.
begin "two schedulers: one leads; kill -9 the leader, the other leads and runs a scheduled job"
extra_log=$KADR_STACK_DIR/logs/scheduler-extra.log
: >"$extra_log"
start_scheduler
_started() { grep -q 'started' "$extra_log"; }
check "the second scheduler did not start" wait_until 20 _started
sleep 1.5 # three steps: long enough to see a wrong second leader
check "two schedulers lead at once" test "$(grep -c 'scheduler: leading' "$extra_log")" -eq 0
for p in $(stack_pids scheduler.pid); do kill -KILL "$p"; done
t0=$SECONDS
_leads() { grep -q 'scheduler: leading' "$extra_log"; }
check "the second scheduler never took the lead" wait_until 30 _leads
check "taking the lead took $((SECONDS - t0)) s" test $((SECONDS - t0)) -le 10
at=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90},\"run_at\":\"$at\"}" ||
    fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
if wait_job "$JOB_ID" 60; then
    expect_json .status completed
fi
fault_cleanup

finish
