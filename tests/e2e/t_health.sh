#!/usr/bin/env bash
# Health, routing and the edges nginx owns.
. ./lib.sh

begin "health: 200 with every check ok"
api GET /api/v1/health
expect_status 200
expect_json .status ok
expect_json .checks.database ok
expect_json .checks.redis ok
expect_json .checks.storage ok
expect_header Content-Type 'application/json*'

begin "health/live: 200"
api GET /api/v1/health/live
expect_status 200

begin "health over HTTPS with the stack's certificate"
api GET "$KADR_HTTPS_URL/api/v1/health" - --cacert "$KADR_TLS_CERT"
expect_status 200
expect_json .status ok

begin "TLS 1.1 is refused"
if curl -sS -o /dev/null --cacert "$KADR_TLS_CERT" --tls-max 1.1 --max-time 10 \
    "$KADR_HTTPS_URL/api/v1/health/live" 2>/dev/null; then
    note "a TLS 1.1 handshake succeeded"
fi

begin "security headers and no server version"
api GET /api/v1/health
expect_header X-Content-Type-Options nosniff
expect_header X-Frame-Options DENY
expect_header Server nginx

begin "unknown API path: 404 problem+json"
KEY=$(new_user health) || note "no user"
api GET /api/v1/no-such-thing
expect_problem 404
KEY=

begin "internal endpoints are closed to the outside"
api GET /api/v1/internal/verify
expect_status 404
api GET "/api/v1/internal/verify?X-Kadr-Expires=1"
expect_status 404
api GET /api/v1/internal/verify - -H 'KADR_INTERNAL: 1' -H 'Kadr-Internal: 1'
expect_status 404

begin "the verify location is internal"
api GET /_kadr_verify
expect_status 404

begin "a PUT to the API prefix of the store is refused"
api POST "/upload/media/x"
expect_status 405
api DELETE "/download/media/x"
expect_status 405

begin "kadr-api refuses to start without url_signing_secret on local storage"
if [[ ${E2E_STORAGE:-local} == local ]]; then
    out=$(KADR_URL_SIGNING_SECRET_FILE= KADR_URL_SIGNING_SECRET= \
        "$KADR_BIN/kadr-api" --config "$KADR_CONFIG" --check-config 2>&1)
    rc=$?
    check "exit status $rc: $out" test "$rc" -ne 0
    check "the message names the key: $out" grep -q 'url_signing_secret is required' <<<"$out"
    out=$("$KADR_BIN/kadr-api" --config "$KADR_CONFIG" --check-config 2>&1)
    check "the stack's own file is valid: $out" grep -q 'configuration is valid' <<<"$out"
fi

finish
