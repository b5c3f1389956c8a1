#!/usr/bin/env bash
# Uploads through presigned URLs, the checks the API makes on completion,
# and downloads, on either storage backend; the checks nginx makes with the
# API on kadr's own URLs run on local disk only (S3 checks its own URLs:
# t_s3_upload.sh).
. ./lib.sh

on_local() { [[ ${E2E_STORAGE:-local} == local ]]; }
# put_behind KEY FILE: stores FILE under KEY behind kadr's back (as a store
# without the exact-size check would): on disk, or with the AWS CLI.
put_behind() {
    if on_local; then
        local obj owner
        obj=$(object_path "$1")
        owner=$(stat -c %U "$KADR_STORAGE/objects")
        mkdir -p "$(dirname "$obj")"
        cp "$2" "$obj"
        chown -R "$owner" "$KADR_STORAGE/objects" 2>/dev/null || true
    else
        s3cli s3 cp --quiet "$2" "s3://kadr/$1" >/dev/null
    fi
}

KEY=$(new_user upload) || { begin "a user for the upload cases"; note "kadrctl user create failed"; finish; exit 1; }
sample=$E2E_MEDIA/sample.mp4
sample_size=$(stat -c %s "$sample")

# new_upload SIZE [NAME]: POST /uploads only; sets UPLOAD_ID, MEDIA_ID, UPLOAD_URL.
new_upload() {
    api POST /api/v1/uploads "{\"filename\":\"${2:-clip.mp4}\",\"size\":$1,\"content_type\":\"video/mp4\"}"
    UPLOAD_ID=$(jqr .upload_id)
    MEDIA_ID=$(jqr .media_id)
    UPLOAD_URL=$(jqr .url)
    [[ $STATUS == 201 ]]
}

# url_param URL NAME: a query parameter's value.
url_param() { sed -n "s/.*[?&]$2=\([^&]*\).*/\1/p" <<<"$1"; }

begin "POST /uploads: 201 with a presigned PUT"
new_upload "$sample_size" sample.mp4
expect_status 201
expect_json .method PUT
expect_jq '.upload_id and .media_id and .expires_at' "upload_id, media_id and expires_at present"
if on_local; then
    check "url is not a presigned /upload/ URL: $UPLOAD_URL" \
        grep -qE "^$KADR_URL/upload/[a-z0-9/._-]+\?.*X-Kadr-Signature=[0-9a-f]{64}" <<<"$UPLOAD_URL"
else
    check "url is not an S3 presigned PUT: $UPLOAD_URL" \
        grep -qE "^$E2E_S3_ENDPOINT/kadr/media/[a-z0-9-]+\?.*X-Amz-Signature=[0-9a-f]{64}" <<<"$UPLOAD_URL"
fi
check "the object key carries the file name" bash -c '! grep -q sample <<<"${1%%\?*}"' _ "$UPLOAD_URL"

begin "upload, complete, probe, download: the same bytes"
if upload_file "$sample" video/mp4 "clip one.mp4"; then
    expect_jq '.media.status == "processing" or .media.status == "ready"' "media processing or ready after complete"
    media=$MEDIA_ID
    obj=$(object_path "$UPLOAD_URL")
    check "the object is not on disk at $obj" test -f "$obj"
    check "the stored object differs from the file" cmp -s "$sample" "$obj"
    if wait_media "$media" 60; then
        expect_json .status ready
        expect_json .kind video
        expect_json .size "$sample_size"
        expect_json .filename "clip one.mp4"
        expect_jq '.probe.duration >= 4.9 and .probe.duration <= 5.1' "probe.duration about 5"
        expect_jq 'any(.probe.streams[]; .type == "video" and .codec == "h264" and .width == 640 and .height == 360)' \
            "a 640x360 h264 video stream"
        expect_jq 'any(.probe.streams[]; .type == "audio" and .codec == "aac")' "an aac audio stream"
        sha=$(sha256sum "$sample" | cut -d' ' -f1)
        expect_json .sha256 "$sha"
    fi
    api GET "/api/v1/media/$media/download"
    expect_status 302
    loc=$(hdr Location)
    [[ -n $loc ]] || { note "no Location: the rest of the case cannot run"; loc="$KADR_URL/download/none?none"; }
    if on_local; then
        check "Location is not a presigned /download/ URL: $loc" grep -q "/download/.*X-Kadr-Signature=" <<<"$loc"
    else
        check "Location is not an S3 presigned GET: $loc" grep -q "^$E2E_S3_ENDPOINT/.*X-Amz-Signature=" <<<"$loc"
    fi
    [[ $loc == http* ]] || loc=$KADR_URL$loc
    code=$(curl -sS -D "$E2E_TMP/dl.h" -o "$E2E_TMP/dl.bin" -w '%{http_code}' "$loc")
    check "download: status $code" test "$code" = 200
    check "downloaded bytes differ" cmp -s "$sample" "$E2E_TMP/dl.bin"
    check "no attachment Content-Disposition naming the file: $(grep -i '^content-disposition' "$E2E_TMP/dl.h")" \
        grep -qiE '^content-disposition: attachment;.*clip' "$E2E_TMP/dl.h"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -r 0-99 "$loc")
    check "a range request: $code" test "$code" = 206
    if on_local; then
        # nginx's answer and kadr's own URL checks
        check "download is not application/octet-stream" grep -qi '^content-type: application/octet-stream' "$E2E_TMP/dl.h"
        check "download lacks nosniff" grep -qi '^x-content-type-options: nosniff' "$E2E_TMP/dl.h"
        code=$(curl -sS -I -o /dev/null -w '%{http_code}' "$loc")
        check "HEAD on the download URL: $code" test "$code" = 200
        name=$(url_param "$loc" X-Kadr-Name)
        code=$(curl -sS -o /dev/null -w '%{http_code}' "${loc/X-Kadr-Name=$name/X-Kadr-Name=evil.html}")
        check "a download URL with another name: $code, expected 403" test "$code" = 403

        begin "the upload URL stops working once the upload is complete"
        code=$(put_raw "$UPLOAD_URL" "$sample")
        check "PUT after complete: $code, expected 403" test "$code" = 403
        check "the object changed" cmp -s "$sample" "$obj"
    fi

    begin "listing media shows it"
    api GET /api/v1/media
    expect_status 200
    jq -e --arg id "$media" 'any(.items[]; .id == $id)' >/dev/null <<<"$BODY" || note "media $media not listed"

    begin "DELETE /media: 204, bytes gone, then 404"
    api DELETE "/api/v1/media/$media"
    expect_status 204
    check "the object is still stored" test ! -e "$(object_path "$UPLOAD_URL")"
    api GET "/api/v1/media/$media"
    expect_problem 404
    api GET "/api/v1/media/$media/download"
    expect_status 404
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$loc")
    check "the old download URL still serves: $code" test "$code" != 200
fi

begin "forged signature: 403 and nothing written"
if ! on_local; then
    : # kadr's own URLs only; S3's tampered URLs: t_s3_upload.sh
elif new_upload "$sample_size"; then
    sig=$(url_param "$UPLOAD_URL" X-Kadr-Signature)
    bad=${UPLOAD_URL/X-Kadr-Signature=$sig/X-Kadr-Signature=$(printf '%064d' 0)}
    code=$(put_raw "$bad" "$sample")
    check "forged signature: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
    flipped=${sig:0:63}$([[ ${sig:63:1} == 0 ]] && echo 1 || echo 0)
    code=$(put_raw "${UPLOAD_URL/X-Kadr-Signature=$sig/X-Kadr-Signature=$flipped}" "$sample")
    check "one flipped digit: $code, expected 403" test "$code" = 403
    code=$(put_raw "${UPLOAD_URL/&X-Kadr-Signature=$sig/}" "$sample")
    check "no signature: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
else
    note "POST /uploads: $STATUS"
fi

begin "nginx's own refusals are problem+json with the request id"
KEY='' api GET /nothing-here - -H 'X-Request-Id: e2e-no-route'
expect_problem 404
expect_header X-Request-Id e2e-no-route
KEY='' api GET /
check "the start page has a request id" test -n "$(hdr X-Request-Id)"
if ! on_local; then
    : # the presigned URLs are S3's, refused by S3 itself
elif new_upload "$sample_size"; then
    sig=$(url_param "$UPLOAD_URL" X-Kadr-Signature)
    KEY='' api PUT "${UPLOAD_URL/X-Kadr-Signature=$sig/X-Kadr-Signature=$(printf '%064d' 0)}" - \
        -T "$sample" -H 'X-Request-Id: e2e-forged-put'
    expect_problem 403
    expect_json .type urn:kadr:problem:forbidden
    expect_header X-Request-Id e2e-forged-put
    KEY='' api POST "$UPLOAD_URL" - -H 'X-Request-Id: e2e-post-upload'
    expect_problem 405
    expect_header Allow PUT
    expect_header X-Request-Id e2e-post-upload
else
    note "POST /uploads: $STATUS"
fi

begin "tampered expiry or size: 403 and nothing written"
if ! on_local; then
    :
elif new_upload "$sample_size"; then
    exp=$(url_param "$UPLOAD_URL" X-Kadr-Expires)
    code=$(put_raw "${UPLOAD_URL/X-Kadr-Expires=$exp/X-Kadr-Expires=$((exp + 86400))}" "$sample")
    check "later expiry: $code, expected 403" test "$code" = 403
    code=$(put_raw "${UPLOAD_URL/X-Kadr-Size=$sample_size/X-Kadr-Size=$((sample_size + 1000))}" "$sample")
    check "other size: $code, expected 403" test "$code" = 403
    code=$(put_raw "${UPLOAD_URL}&X-Extra=1" "$sample")
    check "an extra parameter: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
fi

begin "an expired (genuinely signed) URL: 403 and nothing written"
if ! on_local; then
    : # S3's: t_s3_upload.sh
elif new_upload "$sample_size"; then
    key=${UPLOAD_URL#*/upload/}
    key=${key%%\?*}
    past=$(($(date +%s) - 30))
    sig=$(sign PUT "$key" "$past" "$sample_size")
    url="$KADR_URL/upload/$key?X-Kadr-Expires=$past&X-Kadr-Size=$sample_size&X-Kadr-Signature=$sig"
    code=$(put_raw "$url" "$sample")
    check "expired URL: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
    # The same construction with a future expiry is accepted: the case
    # above failed on the expiry, not on a wrong signature.
    future=$(($(date +%s) + 300))
    sig=$(sign PUT "$key" "$future" "$sample_size")
    code=$(put_raw "$KADR_URL/upload/$key?X-Kadr-Expires=$future&X-Kadr-Size=$sample_size&X-Kadr-Signature=$sig" "$sample")
    check "the same URL unexpired: $code, expected 201" test "$code" = 201
fi

begin "a body larger than declared: 403 (nginx, or S3's signed Content-Length), nothing written"
if new_upload 1000; then
    head -c 2000 "$sample" >"$E2E_TMP/big.bin"
    code=$(put_raw "$UPLOAD_URL" "$E2E_TMP/big.bin")
    check "larger body: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
    # Nothing arrived: complete refuses (a state conflict or invalid).
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
    expect_status 409 422 && expect_problem "$STATUS"
fi

begin "a body smaller than declared: refused, nothing written"
if new_upload 5000; then
    head -c 1000 "$sample" >"$E2E_TMP/small.bin"
    code=$(put_raw "$UPLOAD_URL" "$E2E_TMP/small.bin")
    check "smaller body: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
fi

begin "an object whose size differs from the declared one: complete gives 422"
# nginx lets no such object in; put one in place behind its back (as a
# store without the exact-size check would) to test the API's own check.
if new_upload 5000; then
    head -c 1000 "$sample" >"$E2E_TMP/short.bin"
    put_behind "media/$MEDIA_ID" "$E2E_TMP/short.bin"
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
    expect_problem 422
    expect_jq '.errors | any(.[]; .field == "size")' "the 422 does not name the size"
    check "the object of the wrong size stayed" test ! -e "$(object_path "media/$MEDIA_ID")"
fi

begin "a chunked PUT (no Content-Length): refused, nothing written"
if new_upload "$sample_size"; then
    code=$(curl -sS -o /dev/null -w '%{http_code}' -T - -H 'Transfer-Encoding: chunked' \
        --max-time 30 "$UPLOAD_URL" <"$sample" 2>/dev/null)
    check "chunked PUT: $code, expected 403 or 411" bash -c '[[ $1 == 403 || $1 == 411 ]]' _ "$code"
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
fi

begin "complete without any upload: 409, nothing uploaded"
if new_upload 1234; then
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
    expect_problem 409
fi

begin "a path outside the store is refused"
if ! on_local; then
    : # nginx's /upload/ location; S3 keys are not paths
elif new_upload "$sample_size"; then
    q=${UPLOAD_URL#*\?}
    for p in 'media/..%2F..%2Fsecrets%2Fevil' 'media%2F..%2F..%2Fevil' '..%2Fevil' 'media/%2e%2e/%2e%2e/evil'; do
        code=$(put_raw "$KADR_URL/upload/$p?$q" "$sample")
        check "PUT /upload/$p: $code" bash -c '[[ $1 == 4* ]]' _ "$code"
    done
    check "a file appeared outside objects/" test ! -e "$KADR_STACK_DIR/secrets/evil" -a ! -e "$KADR_STORAGE/evil" -a ! -e "$KADR_STACK_DIR/evil"
fi

begin "declared size over the limit: 413"
api POST /api/v1/uploads '{"filename":"huge.mp4","size":109951162777600,"content_type":"video/mp4"}'
expect_problem 413

begin "nginx and the API agree on the upload limit of the configuration (3G)"
site=$KADR_STACK_DIR/nginx/conf/kadr-site.conf
check "nginx's upload location allows $(grep -o 'client_max_body_size [0-9]*' "$site" | sort -u | tr '\n' ' ')" \
    grep -q 'client_max_body_size 3221225472;' "$site"
api POST /api/v1/uploads '{"filename":"at-limit.mp4","size":3221225472,"content_type":"video/mp4"}'
expect_status 201
api POST /api/v1/uploads '{"filename":"over-limit.mp4","size":3221225473,"content_type":"video/mp4"}'
expect_problem 413

begin "invalid upload requests: 422 naming the field"
api POST /api/v1/uploads '{"size":10,"content_type":"video/mp4"}'
expect_field_error filename
api POST /api/v1/uploads '{"filename":"a.mp4","size":-1,"content_type":"video/mp4"}'
expect_field_error size
api POST /api/v1/uploads '{"filename":"a.mp4","size":"10","content_type":"video/mp4"}'
expect_field_error size

begin "another user's upload cannot be completed"
if new_upload 10; then
    other=$UPLOAD_ID
    KEY=$(new_user upload-b)
    api POST "/api/v1/uploads/$other/complete" '{}'
    expect_problem 404
fi

finish
