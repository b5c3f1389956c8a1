#!/usr/bin/env bash
# Fault 3: Redis restarted with its data removed while 50 jobs wait: the
# scheduler sees the queue is gone, enqueues every waiting job again at
# once (not 30 s later, when it re-pushes entries that look stale), and all
# 50 complete.
. ./lib.sh

KEY=$(new_admin fault3) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "fault 3: Redis loses its data while 50 jobs wait: reconciliation pushes all 50 at once, all complete"
# Nothing may refill the streams before they are looked at: workers and
# the scheduler are stopped until Redis is back, empty.
stop_stack_workers
for p in $(stack_pids scheduler.pid); do stop_pid "$p" TERM 30; done
# All 50 may be pushed in one step (not only the user's five free slots),
# so that the pushes tell when the scheduler acted.
sql "UPDATE users SET max_processing = 50 WHERE id = (SELECT user_id FROM media WHERE id = '$media')" >/dev/null
jobs=()
for ((i = 0; i < 50; i++)); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90}}" ||
        fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
    jobs+=("$JOB_ID")
done
ids=$(printf "'%s'," "${jobs[@]}")
ids=${ids%,}
check "the 50 jobs were not all pending" test "$(jobs_in pending "${jobs[@]}")" -eq 50
sock=$KADR_STACK_DIR/redis/redis.sock
check "the 50 pushes are not in the streams" \
    test "$(for q in $(seq 1 10); do redis-cli -s "$sock" XLEN "kadr:q:$q"; done | paste -sd+ | bc)" -ge 50
rpid=$(stack_pids redis/redis.pid)
[[ -n $rpid ]] || note "no Redis pid"
stop_pid "$rpid" TERM 30 || note "Redis did not stop"
rm -rf "$KADR_STACK_DIR/redis/appendonlydir" "$KADR_STACK_DIR/redis/dump.rdb" \
    "$KADR_STACK_DIR/redis/appendonly.aof"
# Redis alone first, with the configuration stack.sh wrote.
(cd "$KADR_STACK_DIR" && as_stack_user redis-server "$KADR_STACK_DIR/redis/redis.conf") ||
    note "redis-server did not start"
_redis_up() { [[ $(redis-cli -s "$sock" ping 2>/dev/null) == PONG ]]; }
wait_until 30 _redis_up || note "Redis does not answer"
streams=$(redis-cli -s "$sock" --scan --pattern 'kadr:q:*' | wc -l)
check "Redis came back with $streams stream(s)" test "$streams" -eq 0
check "Redis came back with the scheduler's marker" \
    test "$(redis-cli -s "$sock" EXISTS kadr:scheduler:epoch)" -eq 0
# As if every job had just been pushed: the scheduler's re-push of stale
# entries (30 s after enqueued_at) cannot be what saves them in the next
# 30 s; only the reconciliation can.
sql "UPDATE jobs SET enqueued_at = now() WHERE id IN ($ids)" >/dev/null
log=$KADR_STACK_DIR/logs/scheduler.log
lines_before=$(grep -c 'Redis lost its data' "$log")
t_restart=$(sql "SELECT now()")
t0=$SECONDS
restart_stack
_reconciled() { [[ $(grep -c 'Redis lost its data' "$log") -gt $lines_before ]]; }
check "the scheduler did not log a new reconciliation" wait_until 20 _reconciled
_all_pushed() {
    [[ $(sql "SELECT count(*) FROM jobs WHERE id IN ($ids) AND enqueued_at > '$t_restart'") -eq 50 ]]
}
if wait_until 20 _all_pushed; then
    pushed_s=$((SECONDS - t0))
    check "pushing all 50 again took $pushed_s s, not well below the 30 s re-push" test "$pushed_s" -le 15
else
    note "only $(sql "SELECT count(*) FROM jobs WHERE id IN ($ids) AND enqueued_at > '$t_restart'") of 50 pushed again"
fi
_first_done() { [[ $(jobs_in completed "${jobs[@]}") -ge 1 ]]; }
check "no job completed within 20 s of the restart" wait_until 20 _first_done
if wait_until 240 all_jobs_final "${jobs[@]}"; then
    echo "# all 50 completed $((SECONDS - t0)) s after the restart"
    check "not all 50 completed: $(sql "SELECT status, count(*) FROM jobs WHERE id IN ($ids) GROUP BY 1")" \
        test "$(jobs_in completed "${jobs[@]}")" -eq 50
else
    note "not every job ended: $(jobs_in pending "${jobs[@]}") pending"
fi

finish
