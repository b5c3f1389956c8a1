#!/usr/bin/env bash
# Sessions over time (doc/security.md): a login moves a password hash made
# with other scrypt parameters to the configured ones; a session ends
# refresh_family_max_age_s after its login however often it is refreshed;
# kadrctl cleanup and kadr-scheduler delete expired refresh tokens, ended
# sessions, audit events past the retention and old job runs, and nothing
# else. Times are moved in PostgreSQL rather than waited for.
. ./lib.sh

U=/api/v1
PW='correct-horse-battery'
ctl() { "$KADR_BIN/kadrctl" --config "$KADR_CONFIG" "$@"; }
setting() { ctl config | sed -n "s/^$1 = //p"; }
b64url_decode() {
    local s=$1
    s=$(printf '%s' "$s" | tr -- '-_' '+/')
    while (( ${#s} % 4 )); do s="$s="; done
    printf '%s' "$s" | openssl base64 -A -d
}
login() { # login EMAIL: sets AT, RT and SID (the session) on 200
    api POST $U/auth/login "$(jq -cn --arg e "$1" --arg p "$PW" '{email: $e, password: $p}')"
    AT=$(jqr .access_token)
    RT=$(jqr .refresh_token)
    SID=$(b64url_decode "$(cut -d. -f2 <<<"$AT")" | jq -r .sid 2>/dev/null)
}
refresh() { # refresh TOKEN: sets AT and RT on 200
    api POST $U/auth/refresh "{\"refresh_token\":\"$1\"}"
    AT=$(jqr .access_token)
    RT=$(jqr .refresh_token)
}

KEY=
EMAIL="sess-$RANDOM$RANDOM@e2e.test"
api POST $U/auth/register "$(jq -cn --arg e "$EMAIL" --arg p "$PW" '{email: $e, password: $p}')"
UID_=$(jqr .user.id)
LN=$(setting password_scrypt_log2n)
R=$(setting password_scrypt_r)
P=$(setting password_scrypt_p)

begin "login moves a hash made with other scrypt parameters to the configured ones"
check "the stack hashes with ln=$LN (the case needs another value than 10)" test "$LN" != 10
old=$(python3 -c '
import hashlib, os, sys
salt = os.urandom(16)
h = hashlib.scrypt(sys.argv[1].encode(), salt=salt, n=1024, r=8, p=1, dklen=32)
print("$scrypt$ln=10,r=8,p=1$%s$%s" % (salt.hex(), h.hex()))' "$PW")
sql "UPDATE users SET password_hash = '$old' WHERE id = '$UID_'"
login "$EMAIL"
expect_status 200
stored=$(sql "SELECT password_hash FROM users WHERE id = '$UID_'")
check "the stored hash is still ${stored:0:24}..." test "$stored" != "$old"
[[ $stored == "\$scrypt\$ln=$LN,r=$R,p=$P\$"* ]] ||
    note "the new hash does not have ln=$LN,r=$R,p=$P: ${stored:0:24}"
login "$EMAIL"
expect_status 200
check "a second login rehashed again" test "$(sql "SELECT password_hash FROM users WHERE id = '$UID_'")" == "$stored"
api POST $U/auth/login "$(jq -cn --arg e "$EMAIL" '{email: $e, password: "not-the-password"}')" --interface 127.0.0.41
expect_problem 401

begin "a session ends refresh_family_max_age_s after its login, however often refreshed"
MAX=$(setting refresh_family_max_age_s)
login "$EMAIL"
expect_status 200
# The login was an hour short of the maximum age: a refresh still works,
# and the new refresh token expires with the session, not 30 days later.
sql "UPDATE token_families SET created_at = now() - ($MAX - 3600) * interval '1 second' WHERE id = '$SID'"
refresh "$RT"
expect_status 200
left=$(sql "SELECT extract(epoch FROM expires_at - now())::bigint FROM refresh_tokens
            WHERE family_id = '$SID' AND used_at IS NULL")
check "the new refresh token lives ${left}s, expected at most an hour" test "${left:-99999}" -le 3600 -a "${left:-0}" -ge 3500
KEY=$AT
api GET $U/me
expect_status 200
# Past the maximum age: refresh and the access tokens are refused.
sql "UPDATE token_families SET created_at = now() - ($MAX + 1) * interval '1 second' WHERE id = '$SID'"
api GET $U/me
expect_problem 401
KEY=
refresh "$RT"
expect_problem 401
# Another session of the user is unaffected.
login "$EMAIL"
expect_status 200

# plant TAG: rows the cleanup must delete, and rows it must keep.
plant() {
    sql "INSERT INTO audit_events (at, event, detail) VALUES
           (now() - ($(setting audit_retention_days) + 1) * interval '1 day', 'login_failed',
            '{\"planted\":\"$1-old\"}'),
           (now() - ($(setting audit_retention_days) - 1) * interval '1 day', 'login_failed',
            '{\"planted\":\"$1-kept\"}');
         INSERT INTO job_runs (user_id, job_id, kind, at) VALUES
           ('$UID_', md5('$1-old')::uuid, 'created', now() - interval '25 hours'),
           ('$UID_', md5('$1-kept')::uuid, 'created', now() - interval '23 hours')" >/dev/null
    # A session whose token expired, one logged out, and a live one.
    login "$EMAIL"
    EXPIRED_SID=$SID
    sql "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE family_id = '$SID'"
    sql "UPDATE token_families SET created_at = now() - interval '2 hours' WHERE id = '$SID'"
    login "$EMAIL"
    LOGGED_OUT_SID=$SID
    api POST $U/auth/logout "{\"refresh_token\":\"$RT\"}"
    login "$EMAIL"
    LIVE_SID=$SID LIVE_AT=$AT LIVE_RT=$RT
}
planted() { # planted TAG: what is left of the planted rows, as one line
    sql "SELECT (SELECT count(*) FROM audit_events WHERE detail->>'planted' = '$1-old'),
                (SELECT count(*) FROM audit_events WHERE detail->>'planted' = '$1-kept'),
                (SELECT count(*) FROM job_runs WHERE job_id = md5('$1-old')::uuid),
                (SELECT count(*) FROM job_runs WHERE job_id = md5('$1-kept')::uuid),
                (SELECT count(*) FROM token_families WHERE id = '$EXPIRED_SID'),
                (SELECT count(*) FROM token_families WHERE id = '$LOGGED_OUT_SID'),
                (SELECT count(*) FROM token_families WHERE id = '$LIVE_SID'),
                (SELECT count(*) FROM refresh_tokens WHERE expires_at <= now())"
}

begin "kadrctl cleanup deletes what has no use left, and nothing else"
plant c1
check "not planted: $(planted c1)" test "$(planted c1)" == "1|1|1|1|1|1|1|$(sql 'SELECT count(*) FROM refresh_tokens WHERE expires_at <= now()')"
out=$(ctl cleanup --json 2>&1) || note "kadrctl cleanup failed: $out"
check "counts: $out" jq -e '.refresh_tokens >= 1 and .sessions >= 2 and .audit_events >= 1
    and .job_runs >= 1' <<<"$out"
# old audit gone, recent kept; old run gone, recent kept; expired and
# logged-out sessions gone, live kept; no expired token left.
check "left after cleanup: $(planted c1)" test "$(planted c1)" == "0|1|0|1|0|0|1|0"
KEY=$LIVE_AT
api GET $U/me
expect_status 200
KEY=
refresh "$LIVE_RT"
expect_status 200
out=$(ctl cleanup 2>&1)
check "a second run: $out" grep -q '^deleted 0 refresh token(s), 0 session(s), 0 audit event(s), 0 job run(s)$' <<<"$out"

begin "kadr-scheduler runs the cleanup when it takes the lead"
plant c2
check "not planted: $(planted c2)" test "$(planted c2 | cut -d'|' -f1-7)" == "1|1|1|1|1|1|1"
for p in $(stack_pids scheduler.pid); do stop_pid "$p" TERM 30 || note "the scheduler does not stop"; done
restart_stack
cleaned() { [[ $(planted c2) == "0|1|0|1|0|0|1|0" ]]; }
wait_until 30 cleaned || note "left 30 s after the scheduler started: $(planted c2)"
grep -q 'account cleanup' "$KADR_STACK_DIR/logs/scheduler.log" || note "the scheduler logged no cleanup"

finish
