#!/usr/bin/env bash
# nginx's share (doc/security.md): per-address rate limits answered by
# nginx itself while other clients are served, security headers, no
# version, /metrics for trusted addresses only, TLS 1.2 and later only.
# The stack exempts 127.0.0.1 (the suite's own client) from the rate
# limits; the burst comes from another loopback address, which is not.
. ./lib.sh

U=/api/v1

# burst FILE ADDR N URL [curl args]: N requests at once from ADDR in one
# curl process (--parallel), one status code a line in FILE.
burst() {
    local file=$1 addr=$2 n=$3 url=$4 i
    shift 4
    for ((i = 0; i < n; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$url"; done >"$file.cfg"
    curl -s -Z --parallel-max 50 --max-time 60 --interface "$addr" -w '%{http_code}\n' "$@" \
        -K "$file.cfg" >"$file" 2>/dev/null
}

begin "a burst over the auth rate gets 429 from nginx while other clients are served"
b1=$E2E_TMP/burst-auth
# 150 logins at once from 127.0.0.31 (auth zone: 5 r/s, burst 20).
burst "$b1" 127.0.0.31 150 "$KADR_URL$U/auth/login" -X POST -H 'Content-Type: application/json' \
    --data-binary '{"email":"burst@e2e.test"}' &
bp=$!
# Meanwhile the suite's client and another address are served.
served=0
for i in 1 2 3 4 5; do
    api GET $U/health/live
    [[ $STATUS == 200 ]] && served=$((served + 1))
    api POST $U/auth/login '{"email":"other@e2e.test"}' --interface 127.0.0.32
    [[ $STATUS == 422 ]] && served=$((served + 1))
done
wait "$bp"
n429=$(grep -c '^429$' "$b1")
n422=$(grep -c '^422$' "$b1")
check "only $n429 of 150 refused with 429 ($(sort "$b1" | uniq -c | tr '\n' ' '))" test "$n429" -ge 50
check "none served at all ($n422 answered 422)" test "$n422" -ge 1
check "other clients served $served of 10 times" test "$served" -eq 10
# The answer itself: the burst may have drained by now, so keep asking from
# the limited address, faster than the zone's 5 r/s, until nginx refuses one.
for ((i = 0; i < 60; i++)); do
    api POST $U/auth/login '{"email":"burst@e2e.test"}' --interface 127.0.0.31
    [[ $STATUS == 429 ]] && break
done
expect_problem 429
expect_json .type urn:kadr:problem:rate-limited
expect_header Retry-After 1

begin "the API zone limits a busy address too, and only that one"
b2=$E2E_TMP/burst-api
# run.sh renders the API zone at 50 r/s with a burst of 50 for the suite
# (KADR_STACK_API_RATE): 1000 requests leave hundreds over the limit however
# slow the machine.
burst "$b2" 127.0.0.33 1000 "$KADR_URL$U/health/live"
n429=$(grep -c '^429$' "$b2")
n200=$(grep -c '^200$' "$b2")
check "1000 requests at once: $n200 served, $n429 refused" test "$n429" -ge 100 -a "$n200" -ge 50
api GET $U/health/live - --interface 127.0.0.34
expect_status 200

begin "security headers on API answers and nginx's own"
api GET $U/health/live
for h in X-Content-Type-Options X-Frame-Options Referrer-Policy Content-Security-Policy; do
    expect_header "$h"
done
expect_header Cache-Control 'no-store*'
server=$(hdr Server)
check "Server header names a version: $server" test "$server" == nginx
api GET /nonexistent
expect_header X-Content-Type-Options nosniff

begin "/metrics only from trusted addresses"
api GET /metrics - --interface 127.0.0.34
expect_status 403
api GET /metrics
check "/metrics from 127.0.0.1: $STATUS" test "$STATUS" != 403

begin "TLS: 1.2 and 1.3 only"
st=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KADR_TLS_CERT" --tlsv1.2 \
    "$KADR_HTTPS_URL$U/health/live" 2>/dev/null)
check "TLS 1.2+: status $st" test "$st" == 200
st=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KADR_TLS_CERT" --tlsv1.1 --tls-max 1.1 \
    "$KADR_HTTPS_URL$U/health/live" 2>/dev/null)
check "TLS 1.1 accepted: status $st" test "$st" == 000
if openssl s_client -help 2>&1 | grep -q -- '-tls1_2'; then
    out=$(openssl s_client -connect "${KADR_HTTPS_URL#https://}" -tls1_2 -cipher 'AES128-SHA' </dev/null 2>&1)
    check "a non-forward-secret CBC cipher was accepted" bash -c '! grep -q "Cipher is AES128-SHA" <<<"$1"' _ "$out"
fi

finish
