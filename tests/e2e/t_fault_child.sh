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

# A step of the leader that takes longer than its lock's 5 s must not let a
# second leader in: the leader renews the lock between the phases of a step
# and during retention, whose statements have a timeout and whose work per
# step is bounded. Here retention meets media rows that a psql session
# holds locked for 12 s.
begin "a slow retention step keeps the lead: the other scheduler does not lead meanwhile"
trap 'release_held ROLLBACK; rm -f "$E2E_HDRS" "$E2E_OUT"' EXIT
uid=$(sql "SELECT user_id FROM media WHERE id = '$media'")
_stack_leads() { [[ -n $(redis-cli -s "$KADR_STACK_DIR/redis/redis.sock" GET kadr:scheduler:leader) ]]; }
wait_until 20 _stack_leads || note "nobody leads after the restart"
: >"$extra_log"
start_scheduler
check "the second scheduler did not start" wait_until 20 _started
# Due in 3 s (objects that do not exist: deleting them is a no-op), and
# locked before that.
old_ids=$(sql "WITH i AS (INSERT INTO media (user_id, filename, size, status, storage_key, expires_at)
                         SELECT '$uid', 'gone.mp4', 1, 'ready', 'media/e2e-gone-' || gen_random_uuid(),
                                now() + interval '3 seconds' FROM generate_series(1, 6)
                         RETURNING id) SELECT string_agg(quote_literal(id::text), ',') FROM i")
hold_open "SELECT 1 FROM media WHERE id IN ($old_ids) FOR UPDATE;"
slog=$KADR_STACK_DIR/logs/scheduler.log
warned_before=$(grep -c 'cannot mark media' "$slog")
lost_before=$(grep -c 'lost the lead' "$slog")
sleep 12
_met() { [[ $(grep -c 'cannot mark media' "$slog") -gt $warned_before ]]; }
check "retention never met the locked rows" _met
check "the second scheduler led while the first was slow" \
    test "$(grep -c 'scheduler: leading' "$extra_log")" -eq 0
check "the leader lost its lead" test "$(grep -c 'lost the lead' "$slog")" -eq "$lost_before"
release_held COMMIT
_expired() { [[ $(sql "SELECT count(*) FROM media WHERE id IN ($old_ids) AND status = 'expired'") -eq 6 ]]; }
check "the rows were not expired once free" wait_until 30 _expired
fault_cleanup

finish
