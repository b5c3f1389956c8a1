# shellcheck shell=bash
# lib.sh: helpers of the end-to-end cases (sourced by every t_*.sh).
#
# run.sh exports the stack's coordinates:
#   KADR_URL      http://127.0.0.1:<port> (nginx, plain HTTP)
#   KADR_HTTPS_URL, KADR_TLS_CERT, KADR_CONFIG, KADR_BIN, KADR_STORAGE,
#   KADR_STACK_DIR, E2E_TMP (scratch), E2E_DATA (tests/e2e/data), E2E_TOP,
#   E2E_MEDIA (generated media files)
#
# A case:
#   begin "name"
#   api POST /api/v1/uploads '{"filename": ...}'
#   expect_status 201
#   expect_json .method PUT
#   end
# prints "ok - name" or "not ok - name" followed by "#  " lines saying what
# differed. Checks never stop the script: every case runs and reports.

set -u

E2E_CASE=""
E2E_FAILS=()
E2E_CASES_OK=0
E2E_CASES_FAILED=0
KEY=${KEY:-}

# ------------------------------------------------------------------ cases
begin() {
    [[ -z $E2E_CASE ]] || end
    E2E_CASE=$1
    E2E_FAILS=()
}

# note MESSAGE: records a failure of the current case.
note() { E2E_FAILS+=("$*"); }

end() {
    local m
    [[ -n $E2E_CASE ]] || return 0
    if [[ ${#E2E_FAILS[@]} -eq 0 ]]; then
        echo "ok - $E2E_CASE"
        E2E_CASES_OK=$((E2E_CASES_OK + 1))
    else
        echo "not ok - $E2E_CASE"
        for m in "${E2E_FAILS[@]}"; do echo "#   $m"; done
        E2E_CASES_FAILED=$((E2E_CASES_FAILED + 1))
    fi
    E2E_CASE=""
    E2E_FAILS=()
}

# finish: closes the last case; the exit status tells whether all passed.
finish() {
    end
    [[ $E2E_CASES_FAILED -eq 0 ]]
}

# ------------------------------------------------------------------ HTTP
E2E_HDRS=$(mktemp "${E2E_TMP:-/tmp}/hdrs.XXXXXX")
E2E_OUT=$(mktemp "${E2E_TMP:-/tmp}/body.XXXXXX")
trap 'rm -f "$E2E_HDRS" "$E2E_OUT"' EXIT

# api METHOD PATH [JSON|-] [curl args...]
# Calls the API (PATH under KADR_URL, or an absolute URL) with the bearer
# key in $KEY when set. JSON "-" or absent sends no body. Sets STATUS (the
# HTTP status, 000 when no answer), BODY and the response headers for hdr.
api() {
    local method=$1 path=$2 body=-
    shift 2
    if [[ $# -gt 0 ]]; then
        body=$1
        shift
    fi
    local url=$path args=()
    [[ $url == http* ]] || url=$KADR_URL$path
    args=(-sS -o "$E2E_OUT" -D "$E2E_HDRS" -w '%{http_code}' -X "$method" --max-time 30)
    [[ -n $KEY ]] && args+=(-H "Authorization: Bearer $KEY")
    if [[ $body != - ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    : >"$E2E_OUT"
    STATUS=$(curl "${args[@]}" "$@" "$url" 2>"$E2E_TMP/curl.err") || true
    [[ -n $STATUS ]] || STATUS=000
    BODY=$(cat "$E2E_OUT")
}

# hdr NAME: a header of the last response (case-insensitive name; the last
# one when repeated), without the trailing CR.
hdr() {
    awk -v n="$(printf '%s' "$1" | tr 'A-Z' 'a-z')" '
        BEGIN { FS = ":" }
        /^HTTP\// { v = "" }
        { k = tolower($1) }
        k == n { sub(/^[^:]*:[ \t]*/, ""); sub(/\r$/, ""); v = $0 }
        END { print v }' "$E2E_HDRS"
}

# jqr FILTER: runs jq -r on the last body ("" when it is not JSON).
jqr() { jq -r "$1" <<<"$BODY" 2>/dev/null || true; }

# ------------------------------------------------------------------ checks
expect_status() {
    local want
    for want in "$@"; do
        [[ $STATUS == "$want" ]] && return 0
    done
    note "status $STATUS, expected $* — body: $(printf '%.300s' "$BODY")"
    return 1
}

# expect_json FILTER VALUE: jq -r FILTER on the body equals VALUE.
expect_json() {
    local got
    got=$(jqr "$1")
    [[ $got == "$2" ]] && return 0
    note "$1 = '$(printf '%.200s' "$got")', expected '$2'"
    return 1
}

# expect_jq FILTER [MESSAGE]: jq -e FILTER on the body holds.
expect_jq() {
    jq -e "$1" >/dev/null 2>&1 <<<"$BODY" && return 0
    note "${2:-$1 does not hold} — body: $(printf '%.300s' "$BODY")"
    return 1
}

expect_header() {
    local got
    got=$(hdr "$1")
    if [[ $# -ge 2 ]]; then
        # shellcheck disable=SC2053 # $2 is a glob pattern on purpose
        [[ $got == $2 ]] && return 0
        note "header $1 = '$got', expected '$2'"
    else
        [[ -n $got ]] && return 0
        note "header $1 missing"
    fi
    return 1
}

# expect_problem STATUS: the status, and an application/problem+json body
# with that status in it.
expect_problem() {
    expect_status "$1" || return 1
    expect_header Content-Type 'application/problem+json*' || return 1
    expect_jq ".status == $1 and (.title | type == \"string\")" "not a problem document for $1"
}

# expect_field_error PATH: a 422 whose errors[] names PATH.
expect_field_error() {
    expect_problem 422 || return 1
    jq -e --arg f "$1" '.errors | type == "array" and any(.[]; .field == $f)' >/dev/null 2>&1 <<<"$BODY" && return 0
    note "no error for field $1 in: $(printf '%.400s' "$BODY")"
    return 1
}

check() { # check DESCRIPTION COMMAND...: records DESCRIPTION when COMMAND fails.
    local what=$1; shift
    "$@" && return 0
    note "$what"
    return 1
}

# ------------------------------------------------------------------ waiting
# wait_until TIMEOUT_S COMMAND...: polls COMMAND until it succeeds.
wait_until() {
    local timeout_s=$1; shift
    local deadline=$((SECONDS + timeout_s))
    until "$@"; do
        (( SECONDS < deadline )) || return 1
        sleep 0.2
    done
}

_media_settled() {
    api GET "/api/v1/media/$1"
    MEDIA_STATUS=$(jqr .status)
    [[ $STATUS != 200 || $MEDIA_STATUS == ready || $MEDIA_STATUS == rejected ]]
}

# wait_media ID [TIMEOUT_S]: until the media is ready or rejected; sets
# MEDIA_STATUS and leaves the Media in BODY.
wait_media() {
    MEDIA_STATUS=""
    if ! wait_until "${2:-60}" _media_settled "$1"; then
        note "media $1 still '$MEDIA_STATUS' after ${2:-60}s"
        return 1
    fi
    [[ $STATUS == 200 ]] || { note "GET media $1: status $STATUS"; return 1; }
}

_job_settled() {
    api GET "/api/v1/jobs/$1"
    JOB_STATUS=$(jqr .status)
    [[ $STATUS != 200 || $JOB_STATUS == completed || $JOB_STATUS == failed || $JOB_STATUS == cancelled ]]
}

# wait_job ID [TIMEOUT_S]: until the job is completed, failed or cancelled;
# sets JOB_STATUS and leaves the Job in BODY.
wait_job() {
    JOB_STATUS=""
    if ! wait_until "${2:-120}" _job_settled "$1"; then
        note "job $1 still '$JOB_STATUS' (progress $(jqr .progress)) after ${2:-120}s"
        return 1
    fi
    [[ $STATUS == 200 ]] || { note "GET job $1: status $STATUS"; return 1; }
}

# ------------------------------------------------------------------ users
# new_user NAME: creates a user with an API key; prints the key.
new_user() {
    local email="$1-$RANDOM$RANDOM@e2e.test" out key
    out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --email "$email" --api-key 2>&1) || {
        echo "new_user: kadrctl failed: $out" >&2
        return 1
    }
    key=$(sed -n 's/^api_key: *//p' <<<"$out" | head -n 1)
    [[ $key == kadr_* ]] || { echo "new_user: no api_key line in: $out" >&2; return 1; }
    printf '%s\n' "$key"
}

# ------------------------------------------------------------------ uploads
# upload_file PATH [CONTENT_TYPE] [FILENAME]: POST /uploads, PUT the bytes
# to the presigned URL, POST complete. Sets UPLOAD_ID, MEDIA_ID, UPLOAD_URL
# and returns non-zero (after a note) when a step fails.
upload_file() {
    local path=$1 ctype=${2:-video/mp4} name=${3:-$(basename "$1")} size put_status req
    local hargs=()
    size=$(stat -c %s "$path")
    req=$(jq -cn --arg f "$name" --argjson s "$size" --arg c "$ctype" \
        '{filename: $f, size: $s, content_type: $c}')
    api POST /api/v1/uploads "$req"
    expect_status 201 || return 1
    UPLOAD_ID=$(jqr .upload_id)
    MEDIA_ID=$(jqr .media_id)
    UPLOAD_URL=$(jqr .url)
    mapfile -t hargs < <(jq -r '.headers // {} | to_entries[] | "-H", "\(.key): \(.value)"' <<<"$BODY")
    put_status=$(curl -sS -o "$E2E_TMP/put.out" -w '%{http_code}' -T "$path" "${hargs[@]}" \
        --max-time 120 "$UPLOAD_URL" 2>"$E2E_TMP/curl.err") || true
    if [[ $put_status != 200 && $put_status != 201 && $put_status != 204 ]]; then
        note "PUT to the presigned URL: status $put_status $(cat "$E2E_TMP/curl.err")"
        return 1
    fi
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
    expect_status 200 || return 1
    expect_json .media.id "$MEDIA_ID" || return 1
}

# put_raw URL FILE [curl args...]: PUTs FILE to URL; prints the status.
put_raw() {
    local url=$1 file=$2
    shift 2
    curl -sS -o /dev/null -w '%{http_code}' -T "$file" --max-time 60 "$@" "$url" 2>/dev/null || true
}

# object_path KEY_OR_URL: where an object lives on disk. With the media in
# S3 (E2E_STORAGE=s3, run.sh), a copy fetched with the AWS CLI (an
# independent client) into $E2E_TMP/s3-objects; a missing object gives a
# path that does not exist.
object_path() {
    local k=$1 f
    k=${k#*/upload/}
    k=${k#*/download/}
    k=${k%%\?*}
    if [[ ${E2E_STORAGE:-local} == s3 ]]; then
        k=${k#"$E2E_S3_ENDPOINT"/kadr/}
        f=$E2E_TMP/s3-objects/$k
        rm -f "$f"
        mkdir -p "$(dirname "$f")"
        s3cli s3 cp --quiet "s3://kadr/$k" "$f" >/dev/null 2>&1 || rm -f "$f"
        printf '%s\n' "$f"
        return
    fi
    printf '%s/objects/%s\n' "$KADR_STORAGE" "$k"
}

# s3cli ARGS...: the AWS CLI on the suite's S3 server (E2E_STORAGE=s3).
s3cli() {
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        aws --endpoint-url "$E2E_S3_ENDPOINT" "$@"
}

# only_on BACKEND WHY: ends a case file that is about one storage backend
# with one passing case saying so (the suite runs on local disk and on S3).
only_on() {
    if [[ ${E2E_STORAGE:-local} != "$1" ]]; then
        begin "$(basename "$0" .sh): about the $1 storage backend ($2); skipped on ${E2E_STORAGE:-local}"
        finish
        exit 0
    fi
}

# sign METHOD KEY EXPIRES CONSTRAINT: the signature storage.c makes
# (HMAC-SHA256 over "kadr-v1\nMETHOD\nKEY\nEXPIRES\nCONSTRAINT" with the
# url_signing_secret); lets a case build a genuine URL that has expired.
sign() {
    local secret
    secret=$(cat "$KADR_STACK_DIR/secrets/url_signing_secret")
    printf 'kadr-v1\n%s\n%s\n%s\n%s' "$1" "$2" "$3" "$4" |
        openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1
}

# ------------------------------------------------------------------ media
# probe FILE FILTER: ffprobe's JSON of FILE through jq -r FILTER.
probe() {
    ffprobe -v error -print_format json -show_format -show_streams "$1" 2>/dev/null | jq -r "$2"
}

# near A B TOLERANCE: |A - B| <= TOLERANCE.
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

# Submits a job body; sets JOB_ID (for the caller) on 202.
# shellcheck disable=SC2034
submit_job() {
    api POST /api/v1/jobs "$1" "${@:2}"
    JOB_ID=$(jqr .id)
    [[ $STATUS == 202 ]]
}

# A ready sample media for KEY's user (uploaded once per calling script).
sample_media() {
    upload_file "$E2E_MEDIA/sample.mp4" video/mp4 sample.mp4 || return 1
    wait_media "$MEDIA_ID" 60 || return 1
    [[ $MEDIA_STATUS == ready ]] || { note "sample media is $MEDIA_STATUS: $(printf '%.300s' "$BODY")"; return 1; }
}

# band_psnr A TA B TB Y H: PSNR (dB) between the horizontal bands y..y+H of
# file A's frame at TA seconds and file B's at TB (640-pixel-wide frames).
# Tells "drawn over" (low) from "the same picture re-encoded" (over 35).
band_psnr() {
    ffmpeg -nostdin -hide_banner -v info -ss "$2" -i "$1" -ss "$4" -i "$3" -filter_complex \
        "[0:v]crop=640:$6:0:$5[a];[1:v]crop=640:$6:0:$5[b];[a][b]psnr" -frames:v 1 -f null - 2>&1 |
        sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -n 1
}

# above A B: A > B as numbers ("inf" is above everything).
above() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "inf") exit 0; exit !(a + 0 > b + 0) }'; }
# below A B: A < B as numbers (an empty or "inf" A is not).
below() { [[ -n $1 && $1 != inf ]] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

# ------------------------------------------------------------------ faults
# Helpers of the fault-injection cases (t_fault_*.sh): they stop and start
# the stack's own daemons through its pidfiles, run extra workers, and read
# PostgreSQL directly.

# sql QUERY: runs QUERY on the stack's database; prints rows (-tA, '|').
sql() {
    local conninfo
    conninfo=$(sed -n 's/^database_url *= *//p' "$KADR_CONFIG" | tail -n 1)
    psql "$conninfo" -X -tAq -v ON_ERROR_STOP=1 -c "$1" 2>>"$E2E_TMP/sql.err"
}

# stack_user: the user the stack's daemons run as (the owner of its directory).
stack_user() { stat -c %U "$KADR_STACK_DIR"; }

# as_stack_user CMD...: runs CMD as that user (directly when we are it).
as_stack_user() {
    local u
    u=$(stack_user)
    if [[ $EUID -eq 0 && $u != root ]]; then
        setpriv --reuid="$u" --regid="$(stat -c %G "$KADR_STACK_DIR")" --init-groups -- "$@"
    else
        "$@"
    fi
}

# start_worker NAME [VAR=VALUE...]: starts an extra kadr-worker of the stack
# named NAME (its consumer name and jobs.worker), with the KADR_* settings
# given; logs to logs/worker-NAME.log. Sets WORKER_PID (the worker itself).
start_worker() {
    local name=$1
    shift
    (cd "$KADR_STACK_DIR" && exec env KADR_WORKER_NAME="$name" "$@" \
        setpriv --reuid="$(stack_user)" --regid="$(stat -c %G "$KADR_STACK_DIR")" --init-groups -- \
        "$KADR_BIN/kadr-worker" --config "$KADR_CONFIG") \
        </dev/null >>"$KADR_STACK_DIR/logs/worker-$name.log" 2>&1 &
    WORKER_PID=$!
    # No "Killed" line from the shell when a case kills it.
    disown "$WORKER_PID" 2>/dev/null || true
    FAULT_PIDS+=("$WORKER_PID")
}

# start_scheduler [VAR=VALUE...]: an extra kadr-scheduler of the stack with
# the KADR_* settings given (logs/scheduler-extra.log); sets SCHEDULER_PID.
# Stop the stack's own first (stop_pid on stack_pids scheduler.pid), or it
# keeps the lead; fault_cleanup stops this one and restarts the stack's.
start_scheduler() {
    (cd "$KADR_STACK_DIR" && exec env "$@" \
        setpriv --reuid="$(stack_user)" --regid="$(stat -c %G "$KADR_STACK_DIR")" --init-groups -- \
        "$KADR_BIN/kadr-scheduler" --config "$KADR_CONFIG") \
        </dev/null >>"$KADR_STACK_DIR/logs/scheduler-extra.log" 2>&1 &
    SCHEDULER_PID=$!
    disown "$SCHEDULER_PID" 2>/dev/null || true
    FAULT_PIDS+=("$SCHEDULER_PID")
}

# The extra workers a case started; fault_cleanup stops those still alive
# and starts whatever of the stack is not running (its own workers).
FAULT_PIDS=()
fault_cleanup() {
    local p
    for p in "${FAULT_PIDS[@]}"; do stop_pid "$p" TERM 60; done
    FAULT_PIDS=()
    restart_stack
}

# fault_abort MESSAGE: records a failure, cleans up and ends the case file.
fault_abort() {
    note "$*"
    fault_cleanup
    finish
    exit 1
}

# gone PID...: none of the processes is alive.
gone() {
    local p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && return 1; done
    return 0
}

# stop_pid PID [SIGNAL] [TIMEOUT_S]: signals a process and waits until it is gone.
stop_pid() {
    kill "-${2:-TERM}" "$1" 2>/dev/null || return 0
    wait_until "${3:-60}" gone "$1"
}

# stack_pids NAME: live pids in the stack's pidfile NAME (worker-1.pid,
# scheduler.pid, api.pid, redis/redis.pid).
stack_pids() {
    local p f=$KADR_STACK_DIR/$1
    [[ -f $f ]] || return 0
    while read -r p || [[ -n $p ]]; do
        [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && echo "$p"
    done <"$f"
    return 0
}

# stop_stack_workers: SIGTERM the stack's own workers and waits for them
# (they hand back what they run); restart_stack brings them back.
stop_stack_workers() {
    local f p
    for f in "$KADR_STACK_DIR"/worker-*.pid; do
        [[ -f $f ]] || continue
        for p in $(stack_pids "$(basename "$f")"); do stop_pid "$p" TERM 60; done
    done
}

# restart_stack: starts whatever of the stack is not running.
restart_stack() {
    "$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" >>"$E2E_TMP/restart.log" 2>&1 ||
        { note "stack.sh start failed: $(tail -n 5 "$E2E_TMP/restart.log")"; return 1; }
}

# jobs_in STATUS ID...: how many of the jobs have that status.
jobs_in() {
    local status=$1 ids
    shift
    ids=$(printf "'%s'," "$@")
    sql "SELECT count(*) FROM jobs WHERE status = '$status' AND id IN (${ids%,})"
}

# all_jobs_final ID...: every job is completed, failed or cancelled.
all_jobs_final() {
    local ids
    ids=$(printf "'%s'," "$@")
    [[ $(sql "SELECT count(*) FROM jobs WHERE status NOT IN ('completed','failed','cancelled') AND id IN (${ids%,})") == 0 ]]
}

# new_admin NAME: like new_user, for an admin user (no plan limits: the
# fault cases submit dozens of jobs at once); prints the key.
new_admin() {
    local email="$1-$RANDOM$RANDOM@e2e.test" out key
    out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --email "$email" --admin --api-key 2>&1) || {
        echo "new_admin: kadrctl failed: $out" >&2
        return 1
    }
    key=$(sed -n 's/^api_key: *//p' <<<"$out" | head -n 1)
    [[ $key == kadr_* ]] || { echo "new_admin: no api_key line in: $out" >&2; return 1; }
    printf '%s\n' "$key"
}

# hold_open SQL: runs BEGIN and SQL in a psql session that stays open, so
# that the row locks SQL takes are held (and its changes unseen by others)
# until release_held ends the transaction. Returns once the session waits
# inside the transaction. One at a time.
hold_open() {
    local conninfo
    conninfo=$(sed -n 's/^database_url *= *//p' "$KADR_CONFIG" | tail -n 1)
    HOLD_FIFO=$E2E_TMP/hold-$$.fifo
    rm -f "$HOLD_FIFO"
    mkfifo "$HOLD_FIFO"
    PGAPPNAME=kadr-e2e-hold psql "$conninfo" -X -q -v ON_ERROR_STOP=1 <"$HOLD_FIFO" \
        >>"$E2E_TMP/hold.log" 2>&1 &
    HOLD_PID=$!
    exec {HOLD_FD}>"$HOLD_FIFO"
    printf 'BEGIN;\n%s\n' "$1" >&"$HOLD_FD"
    _hold_ready() {
        [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kadr-e2e-hold'
                  AND state = 'idle in transaction'") == 1 ]]
    }
    wait_until 20 _hold_ready || { note "the holding session did not start: $(tail -n 3 "$E2E_TMP/hold.log")"; return 1; }
}

# release_held [COMMIT|ROLLBACK]: ends hold_open's transaction and session.
release_held() {
    [[ -n ${HOLD_FD:-} ]] || return 0
    # \q, not only the end of input: a daemon started meanwhile inherited
    # the fifo's write end and keeps it open.
    printf '%s;\n\\q\n' "${1:-COMMIT}" >&"$HOLD_FD"
    exec {HOLD_FD}>&-
    HOLD_FD=
    wait "$HOLD_PID" 2>/dev/null
    rm -f "$HOLD_FIFO"
}

# lock_waiter PATTERN: some other session (a daemon) waits for a row lock in
# a statement whose text matches the LIKE pattern.
lock_waiter() {
    [[ $(sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
              AND application_name <> 'kadr-e2e-hold' AND query LIKE '$1'") -ge 1 ]]
}

# child_of PID: the first child process of PID (a worker's job process).
child_of() { pgrep -P "$1" | head -n 1; }

# push_edit JOB [PRIORITY]: a delivery of JOB straight into the stack's
# stream, as the API or the scheduler would push it.
push_edit() {
    redis-cli -s "$KADR_STACK_DIR/redis/redis.sock" XADD "kadr:q:${2:-5}" '*' kind edit ref "$1" >/dev/null
}

# no_entries REF: no stream entry names REF any more (acknowledged entries
# are deleted).
no_entries() {
    local q
    for q in $(seq 1 10); do
        redis-cli -s "$KADR_STACK_DIR/redis/redis.sock" XRANGE "kadr:q:$q" - + | grep -qi "$1" && return 1
    done
    return 0
}

# events JOB: the job's event names in order, space-separated.
events() { sql "SELECT string_agg(event, ' ' ORDER BY id) FROM job_events WHERE job_id = '$1'"; }
