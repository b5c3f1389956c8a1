#!/usr/bin/env bash
# Accounts and tokens (doc/security.md): register, login, JWT attacks,
# refresh-token rotation and theft detection, logout, API keys, the admin
# role, and the failed-login limits. Limits per address use source
# addresses of their own on loopback (curl --interface 127.0.0.x), so they
# never lock out the suite's other clients.
. ./lib.sh

U=/api/v1
PW='correct-horse-battery'
EMAIL="sec-$RANDOM$RANDOM@e2e.test"

# b64url: stdin to base64url without padding.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
b64url_decode() {
    local s=$1
    s=$(printf '%s' "$s" | tr -- '-_' '+/')
    while (( ${#s} % 4 )); do s="$s="; done
    printf '%s' "$s" | openssl base64 -A -d
}
# jwt HEADER PAYLOAD DIGEST [KEY]: a token signed with HMAC-DIGEST (none:
# an empty signature), with the stack's access-token key by default.
jwt() {
    local h p sig="" key=${4:-$(cat "$KADR_STACK_DIR/secrets/jwt_secret")}
    h=$(printf '%s' "$1" | b64url)
    p=$(printf '%s' "$2" | b64url)
    [[ $3 == none ]] || sig=$(printf '%s.%s' "$h" "$p" | openssl dgst "-$3" -hmac "$key" -binary | b64url)
    printf '%s.%s.%s' "$h" "$p" "$sig"
}
claims() { # claims IAT NBF EXP [AUD] [ISS]
    printf '{"iss":"%s","aud":"%s","sub":"%s","sid":"%s","iat":%s,"nbf":%s,"exp":%s}' \
        "${5:-kadr}" "${4:-kadr-api}" "$SUB" "$SID" "$1" "$2" "$3"
}
HDR='{"alg":"HS256","typ":"at+jwt","kid":"k1"}'

login() { # login EMAIL PASSWORD [curl args]: sets AT and RT on 200
    local e=$1 p=$2
    shift 2
    api POST $U/auth/login "$(jq -cn --arg e "$e" --arg p "$p" '{email: $e, password: $p}')" "$@"
    AT=$(jqr .access_token)
    RT=$(jqr .refresh_token)
}

KEY=
begin "register: 201 with the User"
api POST $U/auth/register "$(jq -cn --arg e "$EMAIL" --arg p "$PW" '{email: $e, password: $p}')"
expect_status 201
expect_json .user.email "$EMAIL"
expect_json .user.plan free
expect_json .user.is_admin false
expect_jq '.user.id | test("^[0-9a-f-]{36}$")'
expect_jq '.user | has("created_at") and (has("password_hash") | not)'
USER_ID=$(jqr .user.id)

begin "register: the same e-mail (any case) is 409"
api POST $U/auth/register "$(jq -cn --arg e "${EMAIL^^}" --arg p "$PW" '{email: $e, password: $p}')"
expect_problem 409

begin "register: short password, bad e-mail, missing fields are 422"
api POST $U/auth/register '{"email":"short@e2e.test","password":"123456789"}'
expect_field_error password
api POST $U/auth/register '{"email":"no-at-sign","password":"0123456789ab"}'
expect_field_error email
api POST $U/auth/register '{}'
expect_field_error email
expect_field_error password
api POST $U/auth/register '{"email":5,"password":["x"]}'
expect_field_error email

begin "unknown members are 422 naming the field, on every account endpoint"
api POST $U/auth/register "$(jq -cn --arg p "$PW" '{email: "extra@e2e.test", password: $p, is_admin: true}')"
expect_field_error is_admin
api POST $U/auth/login "$(jq -cn --arg e "$EMAIL" --arg p "$PW" '{email: $e, password: $p, remember: 1}')"
expect_field_error remember
api POST $U/auth/refresh '{"refresh_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","scope":"all"}'
expect_field_error scope
api POST $U/auth/logout '{"refresh_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","everywhere":true}'
expect_field_error everywhere
long=$(printf 'k%.0s' $(seq 1 60))
api POST $U/auth/refresh "{\"$long\":1}"
expect_field_error "$(printf 'k%.0s' $(seq 1 40))..."
expect_field_error refresh_token
# The account was not made with the extra member.
api POST $U/auth/login '{"email":"extra@e2e.test","password":"correct-horse-battery"}' --interface 127.0.0.17
expect_problem 401

begin "login: tokens, and the access token works"
login "$EMAIL" "$PW"
expect_status 200
expect_json .token_type Bearer
expect_json .expires_in 900
expect_jq '.refresh_token | test("^[A-Za-z0-9_-]{43}$")'
expect_header Cache-Control 'no-store*'
KEY=$AT
api GET $U/me
expect_status 200
expect_json .id "$USER_ID"
expect_json .email "$EMAIL"
expect_jq '.webhook_secret | test("^[0-9a-f]{64}$")'
expect_jq '(.usage | has("jobs_last_hour") and has("storage_bytes")) and (.limits | has("jobs_per_hour"))'
KEY=

begin "login: unknown e-mail and wrong password answer the same"
login "nobody-$RANDOM@e2e.test" "$PW" --interface 127.0.0.11
expect_problem 401
a=$(jq -c '{type, title, status, detail}' <<<"$BODY")
login "$EMAIL" "wrong-password" --interface 127.0.0.11
expect_problem 401
b=$(jq -c '{type, title, status, detail}' <<<"$BODY")
check "different answers: $a vs $b" test "$a" == "$b"

begin "login: an unknown e-mail costs a hash too (same time within a factor)"
# The median of three of each; an unknown e-mail answered without hashing
# would take a small fraction of a wrong password's time.
t_of() {
    curl -s -o /dev/null -w '%{time_total}\n' --interface 127.0.0.12 -X POST \
        -H 'Content-Type: application/json' --data-binary "$1" "$KADR_URL$U/auth/login"
}
tu=$(for i in 1 2 3; do t_of "{\"email\":\"ghost$i-$RANDOM@e2e.test\",\"password\":\"x-$i-password\"}"; done | sort -n | sed -n 2p)
tw=$(for i in 1 2 3; do t_of "{\"email\":\"$EMAIL\",\"password\":\"x-$i-password\"}"; done | sort -n | sed -n 2p)
check "unknown e-mail ${tu}s vs wrong password ${tw}s" \
    awk -v u="$tu" -v w="$tw" 'BEGIN { exit !(u > w / 3 && w > u / 3) }'

# A genuine session to take apart.
login "$EMAIL" "$PW"
SUB=$(b64url_decode "$(cut -d. -f2 <<<"$AT")" | jq -r .sub)
SID=$(b64url_decode "$(cut -d. -f2 <<<"$AT")" | jq -r .sid)
now=$(date +%s)

begin "a token forged here with the stack's key is accepted (the checks below are meaningful)"
KEY=$(jwt "$HDR" "$(claims "$now" "$now" $((now + 600)))" sha256)
api GET $U/me
expect_status 200

begin "forged signature: 401"
KEY=$(jwt "$HDR" "$(claims "$now" "$now" $((now + 600)))" sha256 "not-the-key-of-this-stack-0123456789")
api GET $U/me
expect_problem 401
# The genuine token with its payload changed (another user id).
p=$(printf '%s' "$(claims "$now" "$now" $((now + 600)))" | sed 's/"sub":"[^"]*"/"sub":"00000000-0000-4000-8000-000000000000"/' | b64url)
KEY="$(cut -d. -f1 <<<"$AT").$p.$(cut -d. -f3 <<<"$AT")"
api GET $U/me
expect_problem 401

begin "expired: 401"
KEY=$(jwt "$HDR" "$(claims $((now - 1000)) $((now - 1000)) $((now - 100)))" sha256)
api GET $U/me
expect_problem 401

begin "not yet valid: 401"
KEY=$(jwt "$HDR" "$(claims "$now" $((now + 600)) $((now + 900)))" sha256)
api GET $U/me
expect_problem 401

begin "wrong audience or issuer: 401"
KEY=$(jwt "$HDR" "$(claims "$now" "$now" $((now + 600)) other-api)" sha256)
api GET $U/me
expect_problem 401
KEY=$(jwt "$HDR" "$(claims "$now" "$now" $((now + 600)) kadr-api evil)" sha256)
api GET $U/me
expect_problem 401

begin "alg none: 401"
KEY=$(jwt '{"alg":"none","typ":"at+jwt","kid":"k1"}' "$(claims "$now" "$now" $((now + 600)))" none)
api GET $U/me
expect_problem 401
KEY=$(jwt '{"alg":"none","typ":"JWT"}' "$(claims "$now" "$now" $((now + 600)))" none)
api GET $U/me
expect_problem 401

begin "re-signed with another algorithm (HS384, HS512) with the right key: 401"
KEY=$(jwt '{"alg":"HS384","typ":"at+jwt","kid":"k1"}' "$(claims "$now" "$now" $((now + 600)))" sha384)
api GET $U/me
expect_problem 401
KEY=$(jwt '{"alg":"HS512","typ":"at+jwt","kid":"k1"}' "$(claims "$now" "$now" $((now + 600)))" sha512)
api GET $U/me
expect_problem 401

begin "unknown kid, wrong typ, duplicate alg: 401"
KEY=$(jwt '{"alg":"HS256","typ":"at+jwt","kid":"k9"}' "$(claims "$now" "$now" $((now + 600)))" sha256)
api GET $U/me
expect_problem 401
KEY=$(jwt '{"alg":"HS256","typ":"JWT","kid":"k1"}' "$(claims "$now" "$now" $((now + 600)))" sha256)
api GET $U/me
expect_problem 401
KEY=$(jwt '{"alg":"HS256","alg":"none","typ":"at+jwt","kid":"k1"}' "$(claims "$now" "$now" $((now + 600)))" sha256)
api GET $U/me
expect_problem 401

begin "refresh: a new pair; the old refresh token is used up"
KEY=
RT1=$RT
api POST $U/auth/refresh "{\"refresh_token\":\"$RT1\"}"
expect_status 200
RT2=$(jqr .refresh_token)
AT2=$(jqr .access_token)
check "the same refresh token again" test "$RT2" != "$RT1"
KEY=$AT2
api GET $U/me
expect_status 200
KEY=

begin "reusing a rotated refresh token revokes the whole family"
api POST $U/auth/refresh "{\"refresh_token\":\"$RT1\"}"
expect_problem 401
# The thief's replay also ended the legitimate holder's session: the
# newest refresh token and the access tokens of the family stop working.
api POST $U/auth/refresh "{\"refresh_token\":\"$RT2\"}"
expect_problem 401
KEY=$AT2
api GET $U/me
expect_problem 401
KEY=$AT
api GET $U/me
expect_problem 401
KEY=

begin "another session of the same user is untouched"
login "$EMAIL" "$PW"
expect_status 200
KEY=$AT
api GET $U/me
expect_status 200
KEY=

begin "logout revokes the family: 204, then refresh and access are 401"
api POST $U/auth/logout "{\"refresh_token\":\"$RT\"}"
expect_status 204
api POST $U/auth/refresh "{\"refresh_token\":\"$RT\"}"
expect_problem 401
KEY=$AT
api GET $U/me
expect_problem 401
KEY=
api POST $U/auth/logout '{"refresh_token":"not-a-token"}'
expect_problem 401
api POST $U/auth/refresh '{}'
expect_field_error refresh_token

begin "API keys: create shows the key once, list never"
login "$EMAIL" "$PW"
KEY=$AT
api POST $U/api-keys '{"name":"ci"}'
expect_status 201
expect_jq '.key | test("^kadr_[0-9A-Za-z]{43}$")'
expect_json .name ci
expect_jq 'has("id") and has("created_at")'
K1=$(jqr .key)
K1_ID=$(jqr .id)
api GET $U/api-keys
expect_status 200
jq -e --arg id "$K1_ID" 'any(.items[]; .id == $id)' >/dev/null <<<"$BODY" || note "the key is not listed"
check "a key or its hash in the list" bash -c '! grep -q "$1" <<<"$2"' _ "${K1#kadr_}" "$BODY"
expect_jq 'all(.items[]; (has("key") or has("key_hash")) | not)'

begin "API keys: an unknown member is 422 naming it, and makes no key"
api GET $U/api-keys
n0=$(jq '.items | length' <<<"$BODY")
api POST $U/api-keys '{"name":"ci2","scopes":["admin"]}'
expect_field_error scopes
api GET $U/api-keys
check "a key was made anyway" test "$(jq '.items | length' <<<"$BODY")" == "$n0"

begin "API keys: the new key works; a revoked key is 401 at once"
KEY=$K1
api GET $U/me
expect_status 200
expect_json .id "$USER_ID"
KEY=$AT
api DELETE "$U/api-keys/$K1_ID"
expect_status 204
KEY=$K1
api GET $U/me
expect_problem 401
KEY=$AT
api DELETE "$U/api-keys/$K1_ID"
expect_problem 404
api GET $U/api-keys
jq -e --arg id "$K1_ID" 'all(.items[]; .id != $id)' >/dev/null <<<"$BODY" || note "a revoked key is still listed"

begin "API keys: another user's key id is 404 and the key keeps working"
api POST $U/api-keys '{}'
expect_status 201
K2=$(jqr .key)
K2_ID=$(jqr .id)
KEY=$(new_user other) || note "no user"
api DELETE "$U/api-keys/$K2_ID"
expect_problem 404
KEY=$K2
api GET $U/me
expect_status 200

begin "the admin role: others get 403, an admin gets the audit log"
KEY=$AT
api GET $U/admin/audit
expect_problem 403
out=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" user create --email "adm-$RANDOM$RANDOM@e2e.test" --admin --api-key 2>&1)
KEY=$(sed -n 's/^api_key: *//p' <<<"$out" | head -n 1)
ADMIN_KEY=$KEY
api GET "$U/admin/audit?limit=100"
expect_status 200
for ev in user_registered login_failed api_key_created api_key_revoked token_family_revoked; do
    jq -e --arg e "$ev" 'any(.items[]; .event == $e)' >/dev/null <<<"$BODY" || note "no $ev event in the audit log"
done
jq -e --arg k "$K1_ID" 'any(.items[]; .event == "api_key_revoked" and .detail.key_id == $k)' \
    >/dev/null <<<"$BODY" || note "the revocation of $K1_ID is not audited"
jq -e 'any(.items[]; .event == "token_family_revoked" and .detail.reason == "reuse")' \
    >/dev/null <<<"$BODY" || note "the reuse revocation is not audited"
KEY=

begin "failed logins lock the account: 429 with Retry-After, even with the right password"
E2="lock-$RANDOM$RANDOM@e2e.test"
api POST $U/auth/register "$(jq -cn --arg e "$E2" --arg p "$PW" '{email: $e, password: $p}')"
expect_status 201
for i in 1 2 3 4 5; do
    login "$E2" "wrong-$i-password" --interface 127.0.0.13
    [[ $STATUS == 401 ]] || note "failure $i: status $STATUS"
done
login "$E2" "$PW" --interface 127.0.0.14
expect_problem 429
expect_header Retry-After
expect_jq '.detail | test("login_max_failures")'

begin "the lockout and the logins refused during it are audited"
KEY=$ADMIN_KEY
api GET "$U/admin/audit?limit=100"
expect_status 200
jq -e --arg e "$E2" 'any(.items[]; .event == "login_locked" and .email == $e
    and .detail.limit == "login_max_failures")' >/dev/null <<<"$BODY" ||
    note "no login_locked event for $E2"
jq -e --arg e "$E2" 'any(.items[]; .event == "login_refused" and .email == $e
    and .addr == "127.0.0.14" and .detail.limit == "login_max_failures")' >/dev/null <<<"$BODY" ||
    note "the login refused with 429 is not audited"
# Refused logins are not failures: the lockout does not grow with them.
n=$(jq --arg e "$E2" '[.items[] | select(.event == "login_failed" and .email == $e)] | length' <<<"$BODY")
check "login_failed events for $E2: $n, expected 5" test "$n" == 5
KEY=

ctl() { "$KADR_BIN/kadrctl" --config "$KADR_CONFIG" "$@"; }
# audit_has FILTER: the newest 100 audit events hold one matching FILTER
# (jq, with $u the user id in U3).
audit_has() {
    local k=$KEY
    KEY=$ADMIN_KEY
    api GET "$U/admin/audit?limit=100"
    KEY=$k
    jq -e --arg u "${U3:-}" "any(.items[]; $1)" >/dev/null <<<"$BODY"
}

begin "kadrctl user set: plan and admin role change at once, audited"
E3="ctl-$RANDOM$RANDOM@e2e.test"
api POST $U/auth/register "$(jq -cn --arg e "$E3" --arg p "$PW" '{email: $e, password: $p}')"
expect_status 201
U3=$(jqr .user.id)
login "$E3" "$PW"
KEY=$AT
api GET $U/admin/audit
expect_problem 403
out=$(ctl user set "$E3" --plan premium --admin on 2>&1) || note "user set failed: $out"
api GET $U/me
expect_json .plan premium
expect_json .is_admin true
expect_json .limits.jobs_per_hour null
api GET $U/admin/audit
expect_status 200
audit_has '.event == "user_changed" and .user_id == $u and .detail.plan.from == "free"
    and .detail.plan.to == "premium" and .detail.is_admin.to == true and .detail.by == "kadrctl"' ||
    note "the change is not audited"
out=$(ctl user set "${E3^^}" --admin off 2>&1) || note "user set --admin off failed: $out"
api GET $U/admin/audit
expect_problem 403
api GET $U/me
expect_json .plan premium
ctl user set "$E3" --plan gold >/dev/null 2>&1
check "--plan gold: exit $?, expected 2" test $? == 2
ctl user set "$E3" --admin yes >/dev/null 2>&1
check "--admin yes: exit $?, expected 2" test $? == 2
ctl user set "nobody-$RANDOM@e2e.test" --plan free >/dev/null 2>&1
check "an unknown user: exit $?, expected 1" test $? == 1

begin "kadrctl user revoke-sessions: every session of the user ends, audited"
login "$E3" "$PW"
AT_A=$AT
login "$E3" "$PW"
AT_B=$AT RT_B=$RT
out=$(ctl user revoke-sessions "$E3" 2>&1) || note "revoke-sessions failed: $out"
check "output: $out" grep -qE '^revoked [3-9] session' <<<"$out"
KEY=$AT_A
api GET $U/me
expect_problem 401
KEY=$AT_B
api GET $U/me
expect_problem 401
KEY=
api POST $U/auth/refresh "{\"refresh_token\":\"$RT_B\"}"
expect_problem 401
n=$(KEY=$ADMIN_KEY; api GET "$U/admin/audit?limit=100"; jq --arg u "$U3" \
    '[.items[] | select(.event == "token_family_revoked" and .user_id == $u
      and .detail.reason == "admin")] | length' <<<"$BODY")
check "admin revocations audited: $n, expected at least 3" test "${n:-0}" -ge 3
login "$E3" "$PW"
expect_status 200
out=$(ctl user revoke-sessions "nobody-$RANDOM@e2e.test" 2>&1)
check "an unknown user: exit $?, expected 1" test $? == 1

begin "kadrctl user create --admin, apikey create and apikey revoke are audited"
out=$(ctl user create --email "ctl-adm-$RANDOM$RANDOM@e2e.test" --admin --json 2>&1) ||
    note "user create failed: $out"
U3=$(jq -r .user_id <<<"$out")
email=$(jq -r .email <<<"$out")
audit_has '.event == "user_created" and .user_id == $u and .detail.is_admin == true
    and .detail.by == "kadrctl" and (.detail.operator | type == "string")' ||
    note "user create --admin is not audited"
out=$(ctl apikey create --email "$email" --json 2>&1) || note "apikey create failed: $out"
kid=$(jq -r .api_key_id <<<"$out")
audit_has ".event == \"api_key_created\" and .user_id == \$u and .detail.key_id == \"$kid\"" ||
    note "apikey create is not audited"
out=$(ctl apikey revoke "$kid" 2>&1) || note "apikey revoke failed: $out"
audit_has ".event == \"api_key_revoked\" and .user_id == \$u and .detail.key_id == \"$kid\"
    and .detail.by == \"kadrctl\"" || note "apikey revoke is not audited"
KEY=

begin "failed logins from one address lock the address (20), not others"
for i in $(seq 1 20); do
    login "nobody-$i-$RANDOM@e2e.test" "wrong-password" --interface 127.0.0.15
    [[ $STATUS == 401 ]] || { note "failure $i: status $STATUS"; break; }
done
login "$EMAIL" "$PW" --interface 127.0.0.15
expect_problem 429
expect_jq '.detail | test("login_max_failures_addr")'
login "$EMAIL" "$PW" --interface 127.0.0.16
expect_status 200

finish
