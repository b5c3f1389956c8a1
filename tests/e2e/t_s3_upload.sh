#!/usr/bin/env bash
# Uploads and downloads on the S3 backend (E2E_STORAGE=s3): S3's presigned
# URLs (checked by the suite's SigV4-verifying server), multipart uploads
# through the API, the scheduler aborting unfinished ones, and the AWS CLI
# as an independent client confirming what was stored.
. ./lib.sh
only_on s3 "S3 presigned and multipart uploads"

KEY=$(new_user s3up) || { begin "a user for the S3 upload cases"; note "kadrctl user create failed"; finish; exit 1; }
sample=$E2E_MEDIA/sample.mp4
sample_size=$(stat -c %s "$sample")
part=5242880 # s3_part_size of the suite (run.sh)

# new_upload SIZE: POST /uploads only; sets UPLOAD_ID, MEDIA_ID, UPLOAD_URL.
new_upload() {
    api POST /api/v1/uploads "{\"filename\":\"clip.bin\",\"size\":$1,\"content_type\":\"application/octet-stream\"}"
    UPLOAD_ID=$(jqr .upload_id)
    MEDIA_ID=$(jqr .media_id)
    UPLOAD_URL=$(jqr .url)
    [[ $STATUS == 201 ]]
}

begin "S3: presigned PUT, complete, probe; the AWS CLI reads back the same bytes"
if upload_file "$sample" video/mp4 "clip one.mp4"; then
    check "the upload URL is not an S3 presigned URL: $UPLOAD_URL" \
        grep -qE "^$E2E_S3_ENDPOINT/kadr/media/[a-z0-9-]+\?.*X-Amz-Signature=[0-9a-f]{64}" <<<"$UPLOAD_URL"
    obj=$(object_path "$UPLOAD_URL")
    check "the AWS CLI finds no object for $UPLOAD_URL" test -f "$obj"
    check "the object in S3 differs from the uploaded file" cmp -s "$sample" "$obj"
    media=$MEDIA_ID
    if wait_media "$media" 60; then
        expect_json .status ready
        expect_json .sha256 "$(sha256sum "$sample" | cut -d' ' -f1)"
    fi
    api GET "/api/v1/media/$media/download"
    expect_status 302
    loc=$(hdr Location)
    check "Location is not an S3 presigned GET: $loc" grep -q "^$E2E_S3_ENDPOINT/.*X-Amz-Signature=" <<<"$loc"
    code=$(curl -sS -D "$E2E_TMP/s3dl.h" -o "$E2E_TMP/s3dl.bin" -w '%{http_code}' "$loc")
    check "download: status $code" test "$code" = 200
    check "downloaded bytes differ" cmp -s "$sample" "$E2E_TMP/s3dl.bin"
    check "no Content-Disposition naming the file: $(grep -i '^content-disposition' "$E2E_TMP/s3dl.h")" \
        grep -qiE "^content-disposition: attachment; filename=\"clip one.mp4\"; filename\*=UTF-8''clip%20one.mp4" "$E2E_TMP/s3dl.h"
fi

begin "S3: a presigned download URL used after its expiry is refused"
# run.sh sets download_url_ttl_s = 15: the URL kadr signed says so, and the
# store (the verifying front, as S3) refuses it once that time has passed
if [[ -n ${media:-} ]]; then
    api GET "/api/v1/media/$media/download"
    expect_status 302
    loc=$(hdr Location)
    check "the URL does not carry the 15 s expiry: $loc" grep -q 'X-Amz-Expires=15&' <<<"$loc"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$loc")
    check "the fresh URL: $code, expected 200" test "$code" = 200
    sleep 17
    code=$(curl -sS -o "$E2E_TMP/expired.xml" -w '%{http_code}' "$loc")
    check "the expired URL: $code, expected 403" test "$code" = 403
    check "the refusal does not say it expired: $(head -c 300 "$E2E_TMP/expired.xml")" \
        grep -q 'expired' "$E2E_TMP/expired.xml"
else
    note "no media from the first case"
fi

begin "S3: tampered presigned URLs are refused and write nothing"
head -c 1000 /dev/urandom >"$E2E_TMP/k1000"
head -c 999 /dev/urandom >"$E2E_TMP/k999"
if new_upload 1000; then
    sig=$(sed -n 's/.*X-Amz-Signature=\([0-9a-f]*\).*/\1/p' <<<"$UPLOAD_URL")
    flipped=${sig:0:10}$([[ ${sig:10:1} == 0 ]] && echo 1 || echo 0)${sig:11}
    code=$(put_raw "${UPLOAD_URL/$sig/$flipped}" "$E2E_TMP/k1000")
    check "one flipped digit of the signature: $code, expected 403" test "$code" = 403
    other=${UPLOAD_URL/\/media\//\/media\/x}
    code=$(put_raw "$other" "$E2E_TMP/k1000")
    check "the same URL for another key: $code, expected 403" test "$code" = 403
    later=$(sed 's/X-Amz-Expires=[0-9]*/X-Amz-Expires=604800/' <<<"$UPLOAD_URL")
    code=$(put_raw "$later" "$E2E_TMP/k1000")
    check "a longer expiry: $code, expected 403" test "$code" = 403
    code=$(put_raw "$UPLOAD_URL" "$E2E_TMP/k999")
    check "another size than the signed Content-Length: $code, expected 403" test "$code" = 403
    code=$(put_raw "${UPLOAD_URL%%\?*}" "$E2E_TMP/k1000")
    check "no signature at all: $code, expected 403" test "$code" = 403
    check "an object was written" test ! -e "$(object_path "$UPLOAD_URL")"
    code=$(put_raw "$UPLOAD_URL" "$E2E_TMP/k1000")
    check "the genuine URL: $code, expected 200" test "$code" = 200
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
    expect_status 200
fi

# put_parts FILE: PUTs each part of the answer in BODY; sets PARTS_JSON
# (the complete body) from the ETags S3 answered.
put_parts() {
    local file=$1 n i url code etag list=()
    n=$(jqr '.parts | length')
    for ((i = 1; i <= n; i++)); do
        url=$(jqr ".parts[$((i - 1))].url")
        tail -c +$(((i - 1) * part + 1)) "$file" | head -c "$part" >"$E2E_TMP/part"
        code=$(curl -sS -D "$E2E_TMP/part.h" -o /dev/null -w '%{http_code}' -T "$E2E_TMP/part" "$url")
        [[ $code == 200 ]] || { note "PUT part $i: $code"; return 1; }
        etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p' "$E2E_TMP/part.h")
        list+=("$(jq -cn --argjson n "$i" --arg e "$etag" '{part_number: $n, etag: $e}')")
    done
    PARTS_JSON=$(printf '%s\n' "${list[@]}" | jq -cs '{parts: .}')
}

begin "S3: a multipart upload of three parts through the API"
big=$E2E_TMP/big.bin
head -c $((2 * part + 12345)) /dev/urandom >"$big"
if new_upload "$(stat -c %s "$big")"; then
    expect_json .method multipart
    expect_json .part_size "$part"
    expect_jq '.parts | length == 3' "three parts"
    expect_jq '[.parts[].url | test("partNumber=") and test("uploadId=") and test("X-Amz-Signature=")] | all' \
        "a presigned URL per part"
    # Each part's size is signed: a bigger (or smaller) body is refused.
    head -c $((part + 1)) /dev/urandom >"$E2E_TMP/fat-part"
    code=$(put_raw "$(jqr '.parts[0].url')" "$E2E_TMP/fat-part")
    check "a part one byte bigger than signed: $code, expected 403" test "$code" = 403
    head -c 100 /dev/urandom >"$E2E_TMP/thin-part"
    code=$(put_raw "$(jqr '.parts[2].url')" "$E2E_TMP/thin-part")
    check "a last part of another size: $code, expected 403" test "$code" = 403
    if put_parts "$big"; then
        api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{}'
        expect_status 422
        api POST "/api/v1/uploads/$UPLOAD_ID/complete" \
            "$(jq -c '.parts |= .[0:2]' <<<"$PARTS_JSON")"
        expect_status 422
        api POST "/api/v1/uploads/$UPLOAD_ID/complete" "$PARTS_JSON"
        expect_status 200
        expect_json .media.id "$MEDIA_ID"
        obj=$(object_path "media/$MEDIA_ID")
        check "the AWS CLI finds no joined object" test -f "$obj"
        check "the joined object differs from the file" cmp -s "$big" "$obj"
        # completing again answers the same (a client retrying a timeout)
        api POST "/api/v1/uploads/$UPLOAD_ID/complete" "$PARTS_JSON"
        expect_status 200
    fi
fi

begin "S3: an expired multipart upload is aborted by the scheduler, nothing stays"
if new_upload $((part + 100)); then
    expect_json .method multipart
    url=$(jqr '.parts[0].url')
    head -c "$part" /dev/urandom >"$E2E_TMP/part"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -T "$E2E_TMP/part" "$url")
    check "PUT part 1: $code" test "$code" = 200
    mp=$(sql "SELECT multipart_id FROM uploads WHERE id = '$UPLOAD_ID'")
    check "no multipart id in the database" test -n "$mp"
    check "the part is not in the store" bash -c "grep -rlF -- '$mp' '$E2E_S3_DATA' >/dev/null || find '$E2E_S3_DATA' -path '*$mp*' | grep -q ."
    sql "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = '$UPLOAD_ID'" >/dev/null
    _aborted() { [[ $(sql "SELECT aborted_at IS NOT NULL FROM uploads WHERE id = '$UPLOAD_ID'") == t ]]; }
    wait_until 30 _aborted || note "the scheduler did not abort the upload within 30 s"
    check "a part of the aborted upload stayed in the store" \
        bash -c "! find '$E2E_S3_DATA' -path '*$mp*' | grep -q ."
    code=$(curl -sS -o /dev/null -w '%{http_code}' -T "$E2E_TMP/part" "$url")
    check "a part PUT after the abort: $code, expected 404" test "$code" = 404
    api POST "/api/v1/uploads/$UPLOAD_ID/complete" '{"parts":[{"part_number":1,"etag":"\"x\""},{"part_number":2,"etag":"\"y\""}]}'
    expect_status 409
    check "an object exists for the aborted upload" test ! -e "$(object_path "media/$MEDIA_ID")"
fi

finish
