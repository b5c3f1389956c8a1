#!/usr/bin/env bash
# Idempotency-Key on POST /jobs.
. ./lib.sh

KEY=$(new_user idem) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end
body="{\"inputs\":[{\"media_id\":\"$media\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}"
other="{\"inputs\":[{\"media_id\":\"$media\"}],\"run_at\":\"2099-01-01T00:00:00Z\",\"priority\":1}"
k="e2e-$RANDOM-$RANDOM"

begin "same key, same body: the same job"
api POST /api/v1/jobs "$body" -H "Idempotency-Key: $k"
expect_status 202
first=$(jqr .id)
api POST /api/v1/jobs "$body" -H "Idempotency-Key: $k"
expect_status 202 200
expect_json .id "$first"

begin "same key, different body: 409"
api POST /api/v1/jobs "$other" -H "Idempotency-Key: $k"
expect_problem 409

begin "another key: a new job"
api POST /api/v1/jobs "$body" -H "Idempotency-Key: $k-2"
expect_status 202
check "the same id for another key" test "$(jqr .id)" != "$first"

begin "no key: a new job each time"
api POST /api/v1/jobs "$body"
a=$(jqr .id)
api POST /api/v1/jobs "$body"
check "two posts without a key gave one job" test "$(jqr .id)" != "$a"

begin "the same key of another user is another job"
KEY=$(new_user idem-b) || note "no second user"
upload_file "$E2E_MEDIA/sample.mp4" || true
api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\"}" -H "Idempotency-Key: $k"
expect_status 202
check "another user's key returned the first user's job" test "$(jqr .id)" != "$first"

begin "an oversized Idempotency-Key: 422 or 400"
api POST /api/v1/jobs "$body" -H "Idempotency-Key: $(head -c 300 /dev/zero | tr '\0' k)"
expect_status 422 400

finish
