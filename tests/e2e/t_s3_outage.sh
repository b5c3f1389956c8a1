#!/usr/bin/env bash
# S3 down for a while (E2E_STORAGE=s3): a job submitted while the store is
# unreachable is retried (the storage client's backoff, then handed back
# with its attempt given back) and completes once S3 is back, its output
# stored; nothing lost, nothing dead-lettered however long the outage.
# Uploads of outputs refused (503 SlowDown) are handed back the same way;
# and a slow upload of an output keeps the job's lease: the worker's loop
# heartbeats while its job child uploads, so no other worker takes over.
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
media=$MEDIA_ID

# storage_requeues JOB: the job's requeued events blaming the store.
storage_requeues() {
    sql "SELECT count(*) FROM job_events WHERE job_id = '$1' AND event = 'requeued' AND detail->>'reason' LIKE 'storage unavailable%'"
}

begin "S3 down far longer than the retries, one attempt allowed: handed back, never dead-lettered"
"$E2E_TOP/tests/s3/s3server.sh" down "$E2E_TMP/s3"
# the API says which dependency is down: a multipart upload needs S3 at once
api POST /api/v1/uploads '{"filename":"big.bin","size":20000000,"content_type":"application/octet-stream"}'
expect_problem 503
expect_header Retry-After
expect_jq '.detail | test("storage")' "the 503 does not name the storage"
if submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"start\":0,\"end\":1}],\"max_attempts\":1}"; then
    job=$JOB_ID
    # two hand-backs at least: the outage outlasts the storage client's
    # retries and the delay before the job is tried again
    _two() { [[ $(storage_requeues "$job") -ge 2 ]]; }
    wait_until 90 _two || note "fewer than two storage hand-backs: $(storage_requeues "$job")"
    check "the job failed while S3 was down" \
        test "$(sql "SELECT status FROM jobs WHERE id = '$job'")" != failed
    "$E2E_TOP/tests/s3/s3server.sh" up "$E2E_TMP/s3" "$s3port" || note "the S3 front did not come back"
    if wait_job "$job" 120; then
        expect_json .status completed
        expect_json .attempts 1
        check "a dead letter was recorded" test "$(sql "SELECT count(*) FROM dead_letters WHERE job_id = '$job'")" -eq 0
        check "the hand-back does not name the store" \
            test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'requeued' AND detail->>'reason' LIKE '%storage is unavailable%'")" -ge 1
    fi
fi
curl -s -o /dev/null "$E2E_S3_ENDPOINT/" || "$E2E_TOP/tests/s3/s3server.sh" up "$E2E_TMP/s3" "$s3port"

begin "S3 refuses the output's upload (503 SlowDown): handed back, then stored; S3's words in the event"
"$E2E_TOP/tests/s3/s3server.sh" fault "$s3port" "status=503&code=SlowDown&count=100000&methods=PUT" >/dev/null ||
    note "the fault switch did not answer"
if submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"start\":0,\"end\":1}],\"max_attempts\":1}"; then
    job=$JOB_ID
    _handed() { [[ $(storage_requeues "$job") -ge 1 ]]; }
    wait_until 90 _handed || note "no storage hand-back while uploads are refused"
    "$E2E_TOP/tests/s3/s3server.sh" fault "$s3port" clear >/dev/null
    check "the event does not carry S3's code" \
        test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'requeued' AND detail->>'reason' LIKE '%storing the output failed%SlowDown%'")" -ge 1
    if wait_job "$job" 120; then
        expect_json .status completed
        expect_json .attempts 1
        obj=$(object_path "media/$(jqr '.outputs[0].media_id')")
        check "the output is not in S3" test -s "$obj"
    fi
fi
"$E2E_TOP/tests/s3/s3server.sh" fault "$s3port" clear >/dev/null

begin "a slow upload of the output: the lease is renewed throughout, no other worker takes the job"
# a second worker, so that a lease left to lapse would be taken over
start_worker s3slow
"$E2E_TOP/tests/s3/s3server.sh" fault "$s3port" "throttle=100000&methods=PUT" >/dev/null ||
    note "the fault switch did not answer"
lease_ms=$(sed -n 's/^job_lease_ms *= *//p' "$KADR_STACK_DIR/local.conf" | tail -n 1)
if submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"preset\":\"ultrafast\",\"crf\":12}}"; then
    job=$JOB_ID
    _storing() { [[ $(sql "SELECT stage FROM jobs WHERE id = '$job'") == storing ]]; }
    if wait_until 90 _storing; then
        t0=$SECONDS
        lapsed=0
        # while it uploads: the lease stays ahead of now (stage and lease
        # read in one statement: the job may finish between two)
        while :; do
            st=$(sql "SELECT stage IS NOT DISTINCT FROM 'storing', lease_expires_at > now() FROM jobs WHERE id = '$job'")
            [[ $st == t\|* ]] || break
            [[ $st == 't|t' ]] || lapsed=$((lapsed + 1))
            sleep 0.5
        done
        took=$((SECONDS - t0))
        check "the upload took ${took}s, not longer than the ${lease_ms} ms lease: nothing shown" \
            test $((took * 1000)) -gt "$lease_ms"
        check "the lease lapsed $lapsed time(s) during the upload" test "$lapsed" -eq 0
    else
        note "the job never reached the storing stage"
    fi
    if wait_job "$job" 180; then
        expect_json .status completed
        expect_json .attempts 1
        check "the job was started more than once" \
            test "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$job' AND event = 'started'")" -eq 1
    fi
    check "the proxy throttled no upload" \
        test "$(curl -s "$E2E_S3_ENDPOINT/__faults" | jq .throttled)" -ge 1
fi
"$E2E_TOP/tests/s3/s3server.sh" fault "$s3port" clear >/dev/null
fault_cleanup

finish
