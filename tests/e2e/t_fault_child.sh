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

finish
