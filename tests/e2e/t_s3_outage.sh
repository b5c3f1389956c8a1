#!/usr/bin/env bash
# S3 down for a while (E2E_STORAGE=s3): a job submitted while the store is
# unreachable is retried (the storage client's backoff, then the job's own
# attempts) and completes once S3 is back, its output stored; nothing lost.
. ./lib.sh
only_on s3 "the S3 store going away and coming back"

KEY=$(new_user s3down) || { begin "a user for the outage case"; note "kadrctl user create failed"; finish; exit 1; }
s3port=${E2E_S3_ENDPOINT##*:}

begin "S3 down for 8 s: the job is retried and completes, its output stored"
if sample_media; then
    "$E2E_TOP/tests/s3/s3server.sh" down "$E2E_TMP/s3"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$E2E_S3_ENDPOINT/" || true)
    check "S3 still answers ($code) after down" test "$code" = 000
    if submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\",\"start\":0,\"end\":1}]}"; then
        job=$JOB_ID
        # the outage: long enough for the worker to meet it
        _job_tried() { api GET "/api/v1/jobs/$job"; [[ $(jqr .status) != pending ]]; }
        wait_until 30 _job_tried || note "the job was never picked up"
        sleep 8
        "$E2E_TOP/tests/s3/s3server.sh" up "$E2E_TMP/s3" "$s3port" || note "the S3 front did not come back"
        if wait_job "$job" 180; then
            expect_json .status completed
            out=$(jqr '.outputs[0].media_id')
            check "no output media" test -n "$out"
            obj=$(object_path "media/$out")
            check "the output is not in S3" test -s "$obj"
            check "the output in S3 is not media" bash -c "ffprobe -v error '$obj' >/dev/null 2>&1"
        fi
    fi
    # whatever happened, S3 is back for the cases after this one
    curl -s -o /dev/null "$E2E_S3_ENDPOINT/" || "$E2E_TOP/tests/s3/s3server.sh" up "$E2E_TMP/s3" "$s3port"
fi

finish
