#!/usr/bin/env bash
# Request-level refusals the router makes before any handler: size, type,
# syntax.
. ./lib.sh

KEY=$(new_user requests) || exit 1

begin "a body over the API cap: 413 problem+json"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$E2E_TMP/big.json"
api POST /api/v1/jobs - -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/big.json"
expect_problem 413

begin "a chunked body over the API cap: 413"
api POST /api/v1/jobs - -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary "@$E2E_TMP/big.json"
expect_status 413

begin "wrong content type: 415 problem+json"
api POST /api/v1/jobs - -H 'Content-Type: text/plain' --data-binary '{"inputs":[]}'
expect_problem 415
api POST /api/v1/uploads - -H 'Content-Type: application/x-www-form-urlencoded' --data-binary 'filename=a'
expect_problem 415

begin "no content type on a JSON endpoint: 415"
api POST /api/v1/uploads - -H 'Content-Type:' --data-binary '{"filename":"a.mp4","size":1,"content_type":"video/mp4"}'
expect_problem 415

begin "application/json with a charset is accepted"
api POST /api/v1/uploads - -H 'Content-Type: application/json; charset=utf-8' \
    --data-binary '{"filename":"a.mp4","size":1,"content_type":"video/mp4"}'
expect_status 201

begin "malformed JSON: 400 problem+json"
api POST /api/v1/jobs '{"inputs": [}'
expect_problem 400
api POST /api/v1/uploads '{"filename": "a.mp4", "size": 1'
expect_problem 400
api POST /api/v1/jobs ''
expect_status 400 422

begin "JSON nested too deep: 400 or 422, no crash"
deep=$(printf '%0.s[' $(seq 1 5000))
api POST /api/v1/jobs "$deep"
expect_status 400 422
api GET /api/v1/health/live
expect_status 200

begin "invalid UTF-8 in JSON: 400 or 422"
printf '{"filename":"\xff\xfe.mp4","size":1,"content_type":"video/mp4"}' >"$E2E_TMP/bad-utf8.json"
api POST /api/v1/uploads - -H 'Content-Type: application/json' --data-binary "@$E2E_TMP/bad-utf8.json"
expect_status 400 422

begin "wrong method on a known path: 405 or 404"
api PUT /api/v1/jobs '{}'
expect_status 405 404
api DELETE /api/v1/uploads
expect_status 405 404

begin "a malformed id in a path: 404"
api GET /api/v1/jobs/not-a-uuid
expect_problem 404
api GET "/api/v1/media/'%20OR%201=1--"
expect_problem 404

begin "list limit out of range: 422"
api GET '/api/v1/jobs?limit=0'
expect_status 422 400
api GET '/api/v1/jobs?limit=101'
expect_status 422 400
api GET '/api/v1/jobs?cursor=garbage!!'
expect_status 422 400

finish
