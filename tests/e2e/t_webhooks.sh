#!/usr/bin/env bash
# Webhooks (fault test 7): a receiver that fails the first three deliveries
# gets the fourth, signed with the user's secret; every try is logged; the
# payload is frozen; a job notifies once per final state; cancellation
# notifies too; redirects are not followed. The stack retries after 0.1 s,
# 0.3 s, 0.6 s, ... (notify_backoff_base_ms = 100 in run.sh's local.conf).
. ./lib.sh

here=$(pwd)
conninfo=$(sed -n 's/^database_url = //p' "$KADR_CONFIG" | tail -n 1)
sql() { psql "$conninfo" -X -tAq -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

hooks=$E2E_TMP/hooks.jsonl
: >"$hooks"
rm -f "$E2E_TMP/hooks.port"
python3 "$here/webhook_receiver.py" "$hooks" "$E2E_TMP/hooks.port" &
receiver=$!
trap 'kill "$receiver" 2>/dev/null; rm -f "$E2E_HDRS" "$E2E_OUT"' EXIT

# An admin: the cases below submit some thirty jobs, past a plan's jobs per
# hour (doc/security.md); admins have no plan limits.
email="hooks-$RANDOM$RANDOM@e2e.test"
out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --email "$email" --admin --api-key --json)
KEY=$(jq -r .api_key <<<"$out")

begin "setup: a receiver on loopback, a user and a ready sample"
wait_until 10 test -s "$E2E_TMP/hooks.port" || note "the receiver did not start"
port=$(cat "$E2E_TMP/hooks.port" 2>/dev/null)
[[ $KEY == kadr_* ]] || note "kadrctl user create: $out"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

begin "kadrctl user show prints the webhook secret"
show=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user show --email "$email")
secret=$(sed -n 's/^webhook_secret: *//p' <<<"$show")
check "no 64-hex secret in: $show" grep -qE '^[0-9a-f]{64}$' <<<"$secret"
check "--json disagrees" test "$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user show \
    --email "$email" --json | jq -r .webhook_secret)" == "$secret"
# shellcheck disable=SC2016 # $0 and $1 are bash -c's own arguments
check "an unknown user is an error" \
    bash -c '! "$0" --config "$1" user show --email nobody@e2e.test >/dev/null 2>&1' \
    "$KADR_BIN/kadrctl" "$KADR_CONFIG"

# hits PATH: requests the receiver got on PATH.
hits() { jq -c --arg p "$1" 'select(.path == $p)' "$hooks"; }
n_hits() { hits "$1" | grep -c . || true; }
at_least() { [[ $(n_hits "$1") -ge $2 ]]; }

# verify_sig HEADER BODY_FILE: the Kadr-Signature checks out with $secret
# and its time is within five minutes of now.
verify_sig() {
    local h=$1 file=$2 t v1 want now
    t=$(sed -n 's/^t=\([0-9]*\),v1=[0-9a-f]*$/\1/p' <<<"$h")
    v1=$(sed -n 's/^t=[0-9]*,v1=\([0-9a-f]*\)$/\1/p' <<<"$h")
    [[ -n $t && ${#v1} == 64 ]] || { note "malformed Kadr-Signature: '$h'"; return 1; }
    want=$({ printf '%s.' "$t"; cat "$file"; } | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    [[ $v1 == "$want" ]] || { note "signature $v1, expected $want"; return 1; }
    now=$(date +%s)
    (( t > now - 300 && t < now + 300 )) || { note "signature time $t is not now ($now)"; return 1; }
}

begin "fault 7: fails three times (HTTP 500), the fourth try arrives with a valid signature"
path="/fail/3/$RANDOM$RANDOM"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"webhook_url\":\"http://127.0.0.1:$port$path\"}" ||
    note "POST /jobs: $STATUS $(printf '%.200s' "$BODY")"
job=$JOB_ID
if [[ -n $job ]] && wait_job "$job" 120; then
    expect_json .status completed
    if wait_until 60 at_least "$path" 4; then
        check "answers were not 500,500,500,200: $(hits "$path" | jq -r .answered | tr '\n' ' ')" \
            test "$(hits "$path" | jq -r .answered | tr '\n' ' ')" == "500 500 500 200 "
        last=$(hits "$path" | sed -n 4p)
        jq -j .body <<<"$last" >"$E2E_TMP/hook4.body"
        verify_sig "$(jq -r '.headers["kadr-signature"]' <<<"$last")" "$E2E_TMP/hook4.body"
        check "content type: $(jq -r '.headers["content-type"]' <<<"$last")" \
            test "$(jq -r '.headers["content-type"]' <<<"$last")" == application/json
        check "user agent: $(jq -r '.headers["user-agent"]' <<<"$last")" \
            grep -q '^kadr-notify/[0-9]' <<<"$(jq -r '.headers["user-agent"]' <<<"$last")"
        check "Kadr-Event header" test "$(jq -r '.headers["kadr-event"]' <<<"$last")" == job.completed
        BODY=$(cat "$E2E_TMP/hook4.body")
        expect_json .event job.completed
        expect_json .job.id "$job"
        expect_json .job.status completed
        expect_jq '.job.outputs | map(.name) | index("main") != null' "no main output in the payload"
        check "the four tries did not carry the same body" \
            test "$(hits "$path" | jq -r .body | sort -u | wc -l)" -eq 1
        check "the tries did not share one Kadr-Delivery id" \
            test "$(hits "$path" | jq -r '.headers["kadr-delivery"]' | sort -u | wc -l)" -eq 1
        # Each try of the first three was signed too (a fresh t each time).
        first=$(hits "$path" | sed -n 1p)
        jq -j .body <<<"$first" >"$E2E_TMP/hook1.body"
        verify_sig "$(jq -r '.headers["kadr-signature"]' <<<"$first")" "$E2E_TMP/hook1.body"
    else
        note "the receiver got $(n_hits "$path") request(s) on $path, expected 4"
    fi
    _settled() { [[ -n $(sql "SELECT 1 FROM webhook_deliveries WHERE job_id = '$job' AND delivered_at IS NOT NULL") ]]; }
    wait_until 20 _settled || note "the delivery is not marked delivered"
    got=$(sql "SELECT string_agg(coalesce(a.status_code::text, '-'), ',' ORDER BY a.id)
               FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
              WHERE d.job_id = '$job'")
    check "attempt log: '$got', expected 500,500,500,200" test "$got" == 500,500,500,200
    got=$(sql "SELECT attempts || ' ' || (last_status = 200) || ' ' || (failed_at IS NULL)
                 FROM webhook_deliveries WHERE job_id = '$job'")
    check "delivery row: '$got'" test "$got" == "4 true true"
fi

begin "a job written completed twice (a racing worker) is notified once"
if [[ -n ${job:-} ]]; then
    sql "UPDATE jobs SET status = 'completed', finished_at = now() WHERE id = '$job'" >/dev/null
    sql "UPDATE jobs SET progress = 100 WHERE id = '$job'" >/dev/null
    n=$(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$job'")
    check "$n deliveries for one final state" test "$n" == 1
fi

begin "cancelling a pending job sends job.cancelled"
path="/ok/$RANDOM$RANDOM"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$path\"}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
api POST "/api/v1/jobs/$job/cancel" '{}'
expect_status 200
if wait_until 30 at_least "$path" 1; then
    BODY=$(hits "$path" | head -n 1 | jq -r .body)
    expect_json .event job.cancelled
    expect_json .job.id "$job"
    expect_json .job.status cancelled
else
    note "no job.cancelled request arrived"
fi

begin "a redirect is not followed, and the try is logged as failed"
path="/redirect/$RANDOM$RANDOM"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$path\"}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
api POST "/api/v1/jobs/$job/cancel" '{}'
if wait_until 30 at_least "$path" 2; then
    check "the redirect target was requested" test "$(n_hits "/redirect-target${path#/redirect}")" -eq 0
    _logged() { [[ -n $(sql "SELECT 1 FROM webhook_deliveries WHERE job_id = '$job' AND attempts >= 2 AND last_error LIKE '%redirect%'") ]]; }
    wait_until 20 _logged || note "last_error does not say the redirect was refused: $(sql "SELECT last_status, last_error FROM webhook_deliveries WHERE job_id = '$job'")"
else
    note "the receiver got $(n_hits "$path") request(s) on $path, expected 2 or more"
fi
# Enough: stop the retries of this one for the rest of the suite.
sql "UPDATE webhook_deliveries SET failed_at = now() WHERE job_id = '$job'" >/dev/null

begin "a 2 MiB answer is cut short and still counts as delivered"
path="/big/$RANDOM$RANDOM"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$path\"}" ||
    note "POST /jobs: $STATUS"
job=$JOB_ID
api POST "/api/v1/jobs/$job/cancel" '{}'
_delivered() { [[ -n $(sql "SELECT 1 FROM webhook_deliveries WHERE job_id = '$1' AND delivered_at IS NOT NULL") ]]; }
big_job=$job
wait_until 30 _delivered "$job" ||
    note "not delivered: $(sql "SELECT attempts, last_status, last_error FROM webhook_deliveries WHERE job_id = '$job'")"
check "more than one request for it" test "$(n_hits "$path")" -eq 1

begin "a slow receiver holds up no other delivery"
slow="/slow/8/$RANDOM$RANDOM"
fast="/ok/fast-$RANDOM$RANDOM"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$slow\"}" ||
    note "POST /jobs: $STATUS"
slow_job=$JOB_ID
api POST "/api/v1/jobs/$slow_job/cancel" '{}'
wait_until 30 at_least "$slow" 1 || note "the slow receiver got nothing"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$fast\"}" ||
    note "POST /jobs: $STATUS"
api POST "/api/v1/jobs/$JOB_ID/cancel" '{}'
wait_until 30 _delivered "$JOB_ID" || note "the second delivery did not arrive"
_delivered "$slow_job" && note "the second delivery waited for the slow one"
wait_until 30 _delivered "$slow_job" || note "the slow delivery (8 s, within the 10 s timeout) failed"

begin "kadr-notify --check-config names a bad key"
out=$("$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" --check-config 2>&1)
check "--check-config on a good file: $out" test "$out" == "configuration ok"
out=$(KADR_NOTIFY_TIMEOUT_MS=1 "$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" --check-config 2>&1) &&
    note "a timeout of 1 ms was accepted"
check "the error does not name the key: $out" grep -q notify_timeout_ms <<<"$out"

begin "two notifiers side by side: 20 events, each delivered once; SIGTERM stops cleanly"
# A second notifier beside the stack's, as root on the same database.
"$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" >"$E2E_TMP/notify2.log" 2>&1 &
notify2=$!
prefix="/ok/many-$RANDOM$RANDOM"
jobs=()
for i in $(seq 1 20); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$prefix/$i\"}" ||
        note "POST /jobs: $STATUS"
    jobs+=("$JOB_ID")
done
for j in "${jobs[@]}"; do api POST "/api/v1/jobs/$j/cancel" '{}'; done
n_prefix() { jq -r --arg p "$prefix/" 'select(.path | startswith($p)) | .path' "$hooks" | grep -c . || true; }
_all_in() { [[ $(n_prefix) -ge 20 ]]; }
wait_until 60 _all_in || note "only $(n_prefix) of 20 deliveries arrived"
# Settled rows are never claimed again: with every row delivered on its
# first try no duplicate can follow.
_rows_done() { [[ $(sql "SELECT count(*) FROM webhook_deliveries WHERE url LIKE '%$prefix/%' AND delivered_at IS NOT NULL AND attempts = 1") -eq 20 ]]; }
wait_until 30 _rows_done || note "not every delivery row is delivered on try 1: $(sql "SELECT string_agg(attempts || '/' || (delivered_at IS NOT NULL), ' ') FROM webhook_deliveries WHERE url LIKE '%$prefix/%'")"
check "a path was delivered twice: $(jq -r --arg p "$prefix/" 'select(.path | startswith($p)) | .path' "$hooks" | sort | uniq -d | tr '\n' ' ')" \
    test "$(n_prefix)" -eq 20
got=$(jq -r --arg p "$prefix/" 'select(.path | startswith($p)) | .body' "$hooks" | jq -r .job.id | sort -u | wc -l)
check "$got distinct jobs in 20 deliveries" test "$got" -eq 20
kill -TERM "$notify2"
code=0
wait "$notify2" || code=$?
check "the second notifier ended with status $code after SIGTERM" test "$code" -eq 0
check "no 'stopped' line in its log: $(tail -n 3 "$E2E_TMP/notify2.log")" grep -q '"notify: stopped"' "$E2E_TMP/notify2.log"
grep -qE 'Sanitizer|runtime error' "$E2E_TMP/notify2.log" && note "a sanitizer report in its log"
echo "# deliveries per notifier: $(sql "SELECT string_agg(n || '=' || c, ' ') FROM (SELECT a.notifier n, count(*) c FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.url LIKE '%$prefix/%' GROUP BY 1) x")"

# The next cases need a notifier of their own settings alone: the stack's
# is stopped meanwhile and started again by stack.sh afterwards.
stack_notifier=$(cat "$KADR_STACK_DIR/notify.pid" 2>/dev/null || true)
[[ -n $stack_notifier ]] && kill -TERM "$stack_notifier" 2>/dev/null
_stack_notifier_gone() { ! kill -0 "$stack_notifier" 2>/dev/null; }
# own_notifier VAR=VALUE...: starts a notifier with these settings; sets OWN.
own_notifier() {
    env "$@" "$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" >>"$E2E_TMP/notify3.log" 2>&1 &
    OWN=$!
}
stop_own() { kill -TERM "$OWN" 2>/dev/null; wait "$OWN" 2>/dev/null; }
# cancelled_hook PATH: a job cancelled at once, announced to PATH; sets job.
cancelled_hook() {
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\",\"webhook_url\":\"http://127.0.0.1:$port$1\"}" ||
        note "POST /jobs: $STATUS"
    job=$JOB_ID
    api POST "/api/v1/jobs/$job/cancel" '{}'
}

begin "a receiver that never succeeds is given up after the retry window, every try logged"
wait_until 30 _stack_notifier_gone || note "the stack's notifier did not stop"
# For the purge case below: a delivery settled long ago (a notifier purges
# when it starts).
sql "UPDATE webhook_deliveries SET delivered_at = now() - interval '100 days' WHERE job_id = '$big_job'" >/dev/null
own_notifier KADR_NOTIFY_RETRY_WINDOW_S=1
path="/fail/1000/$RANDOM$RANDOM"
cancelled_hook "$path"
_given_up() { [[ -n $(sql "SELECT 1 FROM webhook_deliveries WHERE job_id = '$job' AND failed_at IS NOT NULL") ]]; }
if wait_until 60 _given_up; then
    row=$(sql "SELECT attempts || '|' || last_status || '|' || last_error || '|' || (delivered_at IS NULL) FROM webhook_deliveries WHERE job_id = '$job'")
    tries=${row%%|*}
    check "fewer than 2 tries before giving up: $row" test "$tries" -ge 2
    check "the row does not end on the receiver's 500: $row" grep -q '^[0-9]*|500|HTTP 500: no thanks|true$' <<<"$row"
    check "the receiver got $(n_hits "$path") requests, the log says $tries" test "$(n_hits "$path")" -eq "$tries"
    n=$(sql "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.job_id = '$job' AND a.status_code = 500")
    check "$n attempt rows for $tries tries" test "$n" -eq "$tries"
else
    note "not given up: $(sql "SELECT attempts, last_error, failed_at FROM webhook_deliveries WHERE job_id = '$job'")"
fi
stop_own

begin "deliveries settled more than retention_days ago are deleted with their attempts"
_purged() { [[ $(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$big_job'") -eq 0 ]]; }
wait_until 30 _purged || note "the old delivery is still there"
n=$(sql "SELECT count(*) FROM webhook_attempts a WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = a.delivery_id)")
check "$n attempt rows outlived their delivery" test "$n" -eq 0
n=$(sql "SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NOT NULL")
check "recent deliveries went too" test "$n" -ge 20

begin "a receiver on a private address is refused unless notify_allow_private"
own_notifier KADR_NOTIFY_ALLOW_PRIVATE=0 KADR_NOTIFY_RETRY_WINDOW_S=1
path="/ok/private-$RANDOM$RANDOM"
cancelled_hook "$path"
if wait_until 60 _given_up; then
    err=$(sql "SELECT last_error FROM webhook_deliveries WHERE job_id = '$job'")
    check "last_error does not name the refusal: $err" grep -q 'private or reserved address' <<<"$err"
    check "the receiver was reached anyway" test "$(n_hits "$path")" -eq 0
else
    note "not given up: $(sql "SELECT attempts, last_error, failed_at FROM webhook_deliveries WHERE job_id = '$job'")"
fi
stop_own

begin "a notifier killed in the middle of a request leaves its try in the log"
own_notifier
path="/slowonce/15/$RANDOM$RANDOM"
cancelled_hook "$path"
# attempt_log: the job's tries as attempt:status:finished, in order.
attempt_log() {
    sql "SELECT string_agg(a.attempt || ':' || coalesce(a.status_code::text, '-') || ':' ||
                           (a.finished_at IS NOT NULL), ',' ORDER BY a.id)
           FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
          WHERE d.job_id = '$job'"
}
if wait_until 30 at_least "$path" 1; then
    # Logged before the request left, not only when it ended.
    check "the try in flight is not in the log: '$(attempt_log)'" test "$(attempt_log)" == "1:-:false"
    kill -KILL "$OWN"
    wait "$OWN" 2>/dev/null
    err=$(sql "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.job_id = '$job'")
    check "the dead notifier's try does not say it has no outcome: $err" grep -q '^no outcome recorded' <<<"$err"
    # Its claim would run out after notify_timeout_ms + 30 s; sooner here.
    sql "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE job_id = '$job'" >/dev/null
    own_notifier
    wait_until 30 _delivered "$job" ||
        note "not delivered after the restart: $(sql "SELECT attempts, last_error FROM webhook_deliveries WHERE job_id = '$job'")"
    check "attempt log '$(attempt_log)', expected 1:-:false,2:200:true" \
        test "$(attempt_log)" == "1:-:false,2:200:true"
    stop_own
else
    note "the receiver got nothing on $path"
    stop_own
fi

begin "a retry window below an hour is refused outside tests"
out=$(KADR_NOTIFY_RETRY_WINDOW_S=600 KADR_NOTIFY_TEST_SHORT_WINDOW=0 \
    "$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" --check-config 2>&1) &&
    note "a window of 600 s was accepted: $out"
check "the error does not name the key: $out" grep -q 'notify_retry_window_s' <<<"$out"
out=$(KADR_NOTIFY_RETRY_WINDOW_S=3600 KADR_NOTIFY_TEST_SHORT_WINDOW=0 \
    "$KADR_BIN/kadr-notify" --config "$KADR_CONFIG" --check-config 2>&1)
check "an hour was refused: $out" test "$out" == "configuration ok"
grep -qE 'Sanitizer|runtime error' "$E2E_TMP/notify3.log" && note "a sanitizer report in a notifier's log"
"$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" >"$E2E_TMP/restart.log" 2>&1 ||
    note "stack.sh start did not bring the notifier back: $(tail -n 3 "$E2E_TMP/restart.log")"

begin "a job without webhook_url makes no delivery"
submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"run_at\":\"2099-01-01T00:00:00Z\"}" ||
    note "POST /jobs: $STATUS"
api POST "/api/v1/jobs/$JOB_ID/cancel" '{}'
n=$(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$JOB_ID'")
check "$n deliveries without a webhook_url" test "$n" == 0

finish
