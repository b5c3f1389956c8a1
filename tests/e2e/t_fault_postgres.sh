#!/usr/bin/env bash
# Fault 4: PostgreSQL stopped for 10 s under load: the API answers 503 with
# Retry-After, no daemon exits, and every job completes afterwards.
. ./lib.sh

KEY=$(new_admin fault4) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

pg_ctl=$(ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
pg_data=$KADR_STACK_DIR/pg/data
begin "fault 4: PostgreSQL down for 10 s under load: 503 + Retry-After, then all complete"
jobs=()
for ((i = 0; i < 6; i++)); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"slow\"}}" ||
        fault_abort "POST /jobs: $STATUS $(printf "%.200s" "$BODY")"
    jobs+=("$JOB_ID")
done
_running() { [[ $(jobs_in processing "${jobs[@]}") -ge 1 ]]; }
wait_until 60 _running || note "no job started"
# Every daemon of the stack: each worker, the scheduler, the notifier and
# every API process.
daemons=""
for f in "$KADR_STACK_DIR"/worker-*.pid "$KADR_STACK_DIR"/{scheduler,notify,api}.pid; do
    pids=$(stack_pids "$(basename "$f")" | tr '\n' ' ')
    [[ -n $pids ]] || note "no live process in $(basename "$f")"
    daemons+=" $pids"
done
n_workers=$(cat "$KADR_STACK_DIR"/worker-*.pid 2>/dev/null | grep -c .)
check "no worker pidfile" test "$n_workers" -ge 1
echo "# watching$daemons"
(cd "$KADR_STACK_DIR" && as_stack_user "$pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null) ||
    note "pg_ctl stop failed"
down_at=$SECONDS
api GET "/api/v1/jobs/${jobs[0]}"
expect_status 503
expect_header Retry-After
api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$media\"}]}"
expect_status 503
expect_header Retry-After
api GET /api/v1/health
expect_status 503
# Ten seconds down; every daemon must live through it.
while ((SECONDS - down_at < 10)); do
    for p in $daemons; do
        kill -0 "$p" 2>/dev/null || { note "process $p exited while PostgreSQL was down"; break 2; }
    done
    sleep 1
done
(cd "$KADR_STACK_DIR" && as_stack_user "$pg_ctl" -D "$pg_data" -l "$KADR_STACK_DIR/logs/postgres.log" \
    -w -t 60 start >/dev/null) || note "pg_ctl start failed"
for p in $daemons; do
    kill -0 "$p" 2>/dev/null || note "process $p is gone after the outage"
done
_healthy() { api GET /api/v1/health; [[ $STATUS == 200 ]]; }
check "the API did not recover" wait_until 60 _healthy
if wait_until 180 all_jobs_final "${jobs[@]}"; then
    check "not all 6 completed" test "$(jobs_in completed "${jobs[@]}")" -eq 6
else
    note "not every job ended after the outage"
fi

finish
