#!/usr/bin/env bash
# Authentication and the request id.
. ./lib.sh

begin "no credentials: 401 problem+json"
KEY=
api GET /api/v1/media
expect_problem 401

begin "unknown API key: 401"
KEY=kadr_0000000000000000000000000000000000000000000
api GET /api/v1/media
expect_problem 401

begin "malformed Authorization: 401"
KEY=
api GET /api/v1/media - -H 'Authorization: Basic a2FkcjprYWRy'
expect_problem 401
api GET /api/v1/media - -H 'Authorization: Bearer'
expect_problem 401
api GET /api/v1/media - -H "Authorization: Bearer kadr_$(head -c 3000 /dev/zero | tr '\0' a)"
expect_problem 401

begin "a valid key is accepted"
KEY=$(new_user auth) || note "no user"
api GET /api/v1/media
expect_status 200
expect_jq '.items | type == "array"'
expect_jq 'has("next_cursor")'

begin "X-Request-Id is echoed"
api GET /api/v1/media - -H 'X-Request-Id: e2e-req-12345'
expect_header X-Request-Id e2e-req-12345

begin "X-Request-Id is echoed on errors too"
KEY=
api GET /api/v1/media - -H 'X-Request-Id: e2e-req-401'
expect_status 401
expect_header X-Request-Id e2e-req-401

begin "X-Request-Id is generated when absent, and differs per request"
api GET /api/v1/health/live
a=$(hdr X-Request-Id)
api GET /api/v1/health/live
b=$(hdr X-Request-Id)
check "no X-Request-Id generated" test -n "$a"
check "the same id twice: $a" test "$a" != "$b"

begin "an unusable X-Request-Id is replaced"
api GET /api/v1/health/live - -H 'X-Request-Id: bad id with spaces and "quotes"'
rid=$(hdr X-Request-Id)
check "kept the unusable id: $rid" test "$rid" != 'bad id with spaces and "quotes"'
check "no id at all" test -n "$rid"

finish
