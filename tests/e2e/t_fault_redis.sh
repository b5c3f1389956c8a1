#!/usr/bin/env bash
# Fault 3: Redis restarted with its data removed while 50 jobs wait: the
# scheduler sees the queue is gone, enqueues every waiting job again, and
# all 50 complete.
. ./lib.sh

KEY=$(new_admin fault3) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "fault 3: Redis loses its data while 50 jobs wait: all 50 complete"
stop_stack_workers
jobs=()
for ((i = 0; i < 50; i++)); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":0.5}],\"output\":{\"width\":160,\"height\":90}}" ||
        fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
    jobs+=("$JOB_ID")
done
check "the 50 jobs were not all pending" test "$(jobs_in pending "${jobs[@]}")" -eq 50
rpid=$(stack_pids redis/redis.pid)
[[ -n $rpid ]] || note "no Redis pid"
stop_pid "$rpid" TERM 30 || note "Redis did not stop"
rm -rf "$KADR_STACK_DIR/redis/appendonlydir" "$KADR_STACK_DIR/redis/dump.rdb" \
    "$KADR_STACK_DIR/redis/appendonly.aof"
fault_cleanup
sock=$KADR_STACK_DIR/redis/redis.sock
check "Redis came back with data" test "$(redis-cli -s "$sock" dbsize 2>/dev/null)" -lt 60
if wait_until 240 all_jobs_final "${jobs[@]}"; then
    ids=$(printf "'%s'," "${jobs[@]}")
    check "not all 50 completed: $(sql "SELECT status, count(*) FROM jobs WHERE id IN (${ids%,}) GROUP BY 1")" \
        test "$(jobs_in completed "${jobs[@]}")" -eq 50
else
    note "not every job ended: $(jobs_in pending "${jobs[@]}") pending"
fi
check "the scheduler did not notice the lost queue" \
    grep -q 'Redis lost its data' "$KADR_STACK_DIR/logs/scheduler.log"

finish
