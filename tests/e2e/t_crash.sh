#!/usr/bin/env bash
# A worker killed in the middle of a job: its sandboxed child dies with it,
# and once the lease expires a restarted worker runs the job again to the
# end (at least once; one live attempt at a time).
. ./lib.sh

KEY=$(new_user crash) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

worker_procs() { pgrep -f "^$KADR_STACK_DIR/bin/kadr-worker " || true; }

begin "kill -9 the worker mid-job: the child dies too, the job completes on a second attempt"
# Several seconds of encoding: 720p with the slowest x264 preset.
submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"width\":1280,\"height\":720,\"preset\":\"veryslow\"}}" ||
    note "POST /jobs: $STATUS $(printf '%.200s' "$BODY")"
job=$JOB_ID
_running() { api GET "/api/v1/jobs/$job"; [[ $(jqr .status) != pending ]]; }
if [[ -n $job ]] && wait_until 30 _running && [[ $(jqr .status) == processing ]]; then
    wpid=$(head -n 1 "$KADR_STACK_DIR/worker-1.pid")
    check "the worker has no child running the job" test "$(pgrep -P "$wpid" | wc -l)" -ge 1
    dead_dir=$KADR_STACK_DIR/tmp/worker/run-$wpid
    check "the worker's run directory $dead_dir holds no work directory of the job" \
        compgen -G "$dead_dir/$job-*"
    kill -KILL "$wpid"
    _gone() { [[ -z $(worker_procs) ]]; }
    check "a process of the killed worker outlived it: $(worker_procs | tr '\n' ' ')" wait_until 5 _gone
    if "$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" >"$E2E_TMP/restart.log" 2>&1; then
        # The new worker sweeps the dead one's files when it starts.
        _swept() { [[ ! -e $dead_dir ]]; }
        check "the killed worker's work directory is left: $(ls "$dead_dir" 2>/dev/null)" wait_until 10 _swept
        if wait_job "$job" 90; then
            expect_json .status completed
            expect_json .attempts 2
            expect_json .progress 100
        fi
    else
        note "stack.sh start after the kill failed: $(tail -n 5 "$E2E_TMP/restart.log")"
    fi
else
    note "the job never showed as processing: $(jqr .status)"
fi

begin "the restarted worker runs new jobs"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}]}" || note "POST /jobs: $STATUS"
if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 60; then
    expect_json .status completed
fi

finish
