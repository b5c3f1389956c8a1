#!/usr/bin/env bash
# nginx's share (doc/security.md): per-address rate limits answered by
# nginx itself while other clients are served, security headers, no
# version, /metrics for trusted addresses only (and its content), TLS 1.2
# and later only.
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
# The shape of nginx's 429. The burst's bucket may have drained by now on a
# slow machine, so ask until the zone refuses (20 of burst at 5 r/s: a
# quick loop meets it within a few dozen requests).
for i in $(seq 1 200); do
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

begin "the connection limit: one address holding the limit gets 429, others are served"
# nginx again with 5 connections per address (KADR_STACK_CONN_LIMIT), so
# that a handful of held requests reach it; restored below.
KADR_STACK_CONN_LIMIT=5 "$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" \
    >>"$E2E_TMP/restart.log" 2>&1 || note "stack.sh start failed: $(tail -n 3 "$E2E_TMP/restart.log")"
grep -q 'limit_conn kadr_conn 5;' "$KADR_STACK_DIR/nginx/conf/kadr-site.conf" ||
    note "nginx was not rendered with the limit of 5"
# 5 requests from 127.0.0.35 that stay in flight: headers sent, the body
# announced and never sent, so nginx waits for it (client_body_timeout).
hold=$E2E_TMP/hold
rm -f "$hold.ready"
python3 - "${KADR_URL#http://}" 127.0.0.35 5 "$hold.ready" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
socks = []
for _ in range(int(sys.argv[3])):
    s = socket.socket()
    s.bind((sys.argv[2], 0))
    s.connect((host, int(port)))
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: kadr\r\n"
              b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    socks.append(s)
time.sleep(0.5)  # nginx has read every header block
open(sys.argv[4], "w").close()
time.sleep(20)
PY
hp=$!
wait_until 10 test -f "$hold.ready" || note "the held connections are not open"
# The limit applies as soon as nginx has the 5 in flight: ask until it
# refuses (at most 10 s), then look at the answer.
for i in $(seq 1 50); do
    api GET $U/health/live - --interface 127.0.0.35
    [[ $STATUS == 429 ]] && break
    sleep 0.2
done
expect_problem 429
expect_json .type urn:kadr:problem:rate-limited
api GET $U/health/live - --interface 127.0.0.36
expect_status 200
kill "$hp" 2>/dev/null
wait "$hp" 2>/dev/null
# Released, the address is served again.
wait_until 10 bash -c '[[ $(curl -s -o /dev/null -w "%{http_code}" --interface 127.0.0.35 "$1") == 200 ]]' _ \
    "$KADR_URL$U/health/live" || note "127.0.0.35 is not served after releasing its connections"
"$E2E_TOP/scripts/stack.sh" start --dir "$KADR_STACK_DIR" >>"$E2E_TMP/restart.log" 2>&1 ||
    note "stack.sh start (restoring nginx) failed"
grep -q 'limit_conn kadr_conn 100;' "$KADR_STACK_DIR/nginx/conf/kadr-site.conf" ||
    note "nginx was not restored to the limit of 100"

begin "413 from nginx names the cap of its location"
big=$E2E_TMP/big-body.json
{ printf '{"email":"'; head -c 20000 /dev/zero | tr '\0' a; printf '"}'; } >"$big"
api POST $U/auth/login - -H 'Content-Type: application/json' --data-binary "@$big"
expect_problem 413
expect_jq '.detail | test("16384 bytes")' "the auth location's 413 does not name 16 KiB"
cap=$(sed -n 's/^body_max_bytes *= *//p' "$KADR_CONFIG" | tail -n 1)
{ printf '{"inputs":"'; head -c $((cap + 10)) /dev/zero | tr '\0' a; printf '"}'; } >"$big"
KEY=$(new_user nginx413) || note "no user"
api POST $U/jobs - -H 'Content-Type: application/json' --data-binary "@$big"
KEY=
expect_problem 413
expect_jq ".detail | test(\"$cap bytes\")" "the API location's 413 does not name $cap"

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

# metric NAME [LABELS]: the value of one series in the last /metrics body.
metric() {
    local s=$1
    [[ -n ${2:-} ]] && s="$1{$2}"
    S=$s awk '$1 == ENVIRON["S"] { print $2 }' <<<"$BODY"
}

begin "/metrics from a trusted address: Prometheus text"
api GET /metrics
expect_status 200
expect_header Content-Type 'text/plain; version=0.0.4*'
for m in kadr_build_info kadr_jobs kadr_media kadr_queue_depth kadr_workers_online \
    kadr_workers_seen kadr_up kadr_api_requests_total kadr_api_errors_total; do
    grep -qE "^# TYPE $m (gauge|counter)$" <<<"$BODY" || note "no # TYPE line for $m"
done
check "build info: $(grep '^kadr_build_info' <<<"$BODY")" grep -qE '^kadr_build_info\{version="[0-9.]+"\} 1$' <<<"$BODY"
for st in pending processing completed failed cancelled; do
    [[ $(metric kadr_jobs "status=\"$st\"") =~ ^[0-9]+$ ]] || note "no kadr_jobs series for $st"
done
for st in uploading processing ready rejected expired; do
    [[ $(metric kadr_media "status=\"$st\"") =~ ^[0-9]+$ ]] || note "no kadr_media series for $st"
done
for p in 1 5 10; do
    [[ $(metric kadr_queue_depth "priority=\"$p\"") =~ ^[0-9]+$ ]] || note "no queue depth of priority $p"
done
check "database up" test "$(metric kadr_up 'dependency="database"')" == 1
check "redis up" test "$(metric kadr_up 'dependency="redis"')" == 1
check "workers online: $(metric kadr_workers_online)" test "$(metric kadr_workers_online)" -ge 1
# Every line is a comment or "name{labels} value" (what Prometheus parses).
bad=$(grep -vE '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"\})? [0-9]+)$' <<<"$BODY" | head -n 3)
check "lines Prometheus would not read: $bad" test -z "$bad"

begin "/metrics: the request counters are shared by the API processes and move"
api GET /metrics
ok0=$(metric kadr_api_requests_total 'class="2xx"')
u0=$(metric kadr_api_unauthorized_total)
for i in $(seq 1 20); do api GET /api/v1/health/live; done
KEY=kadr_0000000000000000000000000000000000000000000
for i in 1 2 3; do api GET /api/v1/media; done
KEY=
api GET /metrics
ok1=$(metric kadr_api_requests_total 'class="2xx"')
u1=$(metric kadr_api_unauthorized_total)
# The stack runs 2 API processes: 21 more (20 + the scrape) could only be
# seen by one of them if both count in one place, or if all went to it.
check "2xx went from $ok0 to $ok1, expected at least 21 more" test $((ok1 - ok0)) -ge 21
check "401s went from $u0 to $u1, expected 3 more" test $((u1 - u0)) -eq 3

begin "/metrics from an untrusted address: 403 problem+json from nginx"
api GET /metrics - --interface 127.0.0.34
expect_problem 403
expect_json .type urn:kadr:problem:forbidden
check "a metric leaked: $(printf '%.100s' "$BODY")" bash -c '! grep -q kadr_ <<<"$1"' _ "$BODY"
# nginx normalises the path before choosing the location: still 403.
api GET /api/../metrics - --interface 127.0.0.34 --path-as-is
expect_status 403
api GET /api/v1/%2e%2e/%2e%2e/metrics - --interface 127.0.0.34 --path-as-is
expect_status 403 404

begin "/metrics cannot be reached through /api/ from anywhere"
for p in /api/metrics /api/v1/metrics /api/v1/metrics/ "/api/v1/health/..%2fmetrics"; do
    for a in 127.0.0.1 127.0.0.34; do
        api GET "$p" - --interface "$a" --path-as-is
        [[ $STATUS == 404 ]] || note "GET $p from $a: status $STATUS, expected 404"
        grep -q '^kadr_' <<<"$BODY" && note "GET $p from $a answered metrics"
    done
done
# A client cannot set nginx's marker: a header arrives as HTTP_KADR_METRICS.
api GET /api/v1/metrics - -H 'KADR_METRICS: 1' -H 'Kadr-Metrics: 1'
expect_problem 404

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
