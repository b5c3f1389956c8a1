#!/usr/bin/env bash
# Untrusted media: garbage is rejected by the worker's probe, damaged media
# fails or completes without hurting the worker, and the next job runs.
. ./lib.sh

KEY=$(new_user corrupt) || exit 1

begin "garbage behind an MP4 header: media rejected with an error"
if upload_file "$E2E_MEDIA/corrupt.mp4" video/mp4 corrupt.mp4; then
    bad=$MEDIA_ID
    if wait_media "$bad" 60; then
        expect_json .status rejected
        expect_jq '.error.code == "invalid_media" and (.error.message | length > 0)' "error invalid_media with a message"
    fi

    begin "a job on rejected media: 422 at submission or failed invalid_media"
    api POST /api/v1/jobs "{\"inputs\":[{\"media_id\":\"$bad\"}]}"
    if [[ $STATUS == 202 ]]; then
        job=$(jqr .id)
        if wait_job "$job" 60; then
            expect_json .status failed
            expect_json .error.code invalid_media
        fi
    else
        expect_field_error "inputs[0].media_id"
    fi
fi

begin "random bytes declared as a video: rejected"
if upload_file "$E2E_MEDIA/noise.bin" video/mp4 noise.mp4; then
    wait_media "$MEDIA_ID" 60 && expect_json .status rejected
fi

begin "damaged frames behind a sound header: the job ends (completed or invalid_media)"
if upload_file "$E2E_MEDIA/damaged.mp4" video/mp4 damaged.mp4; then
    wait_media "$MEDIA_ID" 60
    if [[ $MEDIA_STATUS == ready ]]; then
        submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"layers\":[{\"type\":\"text\",\"text\":\"x\"}]}" ||
            note "POST /jobs: $STATUS"
        if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
            check "status $JOB_STATUS, error $(jqr .error.code)" \
                bash -c '[[ $1 == completed || ( $1 == failed && $2 == invalid_media ) ]]' _ "$JOB_STATUS" "$(jqr .error.code)"
        fi
    fi
fi

begin "the next job after bad media still succeeds"
if sample_media; then
    submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\",\"start\":0,\"end\":1}],\"layers\":[{\"type\":\"text\",\"text\":\"ok\"}]}" ||
        note "POST /jobs: $STATUS"
    if [[ -n $JOB_ID ]] && wait_job "$JOB_ID" 120; then
        expect_json .status completed
    fi
fi

finish
