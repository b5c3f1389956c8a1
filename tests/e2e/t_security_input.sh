#!/usr/bin/env bash
# Hostile input (doc/security.md): SQL metacharacters in every string field
# (e-mail, key name, file name, content type, text layer, font, webhook
# URL, metadata, idempotency key, query) are stored and returned
# literally, and a job drawing hostile text runs to completion; nested, oversized, non-UTF-8 and
# duplicate-key JSON is refused on every JSON endpoint; and every endpoint
# taking an id answers another user's id with 404 and changes nothing.
. ./lib.sh

U=/api/v1
# Quotes of both kinds, a statement terminator, comments, LIKE and
# positional-parameter characters, a backslash, and non-ASCII.
S="Robert'); DROP TABLE users;-- \"q\" \\\\ %_ \$1 /* */ ; é Ж"

begin "SQL metacharacters: e-mail, stored and returned literally"
KEY=
EM="o'hara\";--+\$1%_$RANDOM@e2e.test"
api POST $U/auth/register "$(jq -cn --arg e "$EM" '{email: $e, password: "0123456789-pw"}')"
expect_status 201
expect_json .user.email "$EM"
api POST $U/auth/login "$(jq -cn --arg e "$EM" '{email: $e, password: "0123456789-pw"}')"
expect_status 200
KEY=$(jqr .access_token)
api GET $U/me
expect_json .email "$EM"

begin "SQL metacharacters: API key name"
api POST $U/api-keys "$(jq -cn --arg n "$S" '{name: $n}')"
expect_status 201
expect_json .name "$S"
api GET $U/api-keys
jq -e --arg n "$S" 'any(.items[]; .name == $n)' >/dev/null <<<"$BODY" || note "the name changed in the list"

begin "SQL metacharacters: upload file name and content type"
# A content type is two tokens (RFC 9110): quotes, '%', '$', '#', '|' and
# '--' are token characters; ';', spaces and '"' are not (422 below).
CT="video/x-o'hara--%_\$1#|*&!^~\`"
api POST $U/uploads "$(jq -cn --arg f "$S.mp4" --arg c "$CT" '{filename: $f, size: 10, content_type: $c}')"
expect_status 201
mid=$(jqr .media_id)
api GET "$U/media/$mid"
expect_json .filename "$S.mp4"
expect_json .content_type "$CT"
api GET "$U/media"
jq -e --arg c "$CT" 'any(.items[]; .content_type == $c)' >/dev/null <<<"$BODY" ||
    note "the content type changed in the list"
api POST $U/uploads "$(jq -cn '{filename: "x.mp4", size: 10, content_type: "video/mp4; DROP TABLE media;--"}')"
expect_field_error content_type

begin "SQL metacharacters: job text layer, font, webhook URL, metadata, idempotency key"
sample_media || note "no sample media"
# A font name is letters, digits, ' ', '-', '_' and '.' (it goes into a
# fontconfig pattern): '--', '_' and '.' are the SQL-ish ones it allows.
FONT="DejaVu Sans--_x."
# Printable ASCII except spaces is allowed in a webhook URL's path and query.
HOOK="https://example.org/h'ook\";--/*x*/?q=1');DROP%20TABLE%20jobs;--&b=\$1\\%_"
body=$(jq -cn --arg m "$MEDIA_ID" --arg s "$S" --arg f "$FONT" --arg h "$HOOK" '{
    inputs: [{media_id: $m}], layers: [{type: "text", text: $s, font: $f}],
    webhook_url: $h, metadata: {note: $s, ($s): 1}, run_at: "2099-01-01T00:00:00Z"}')
api POST $U/jobs "$body" -H "Idempotency-Key: k'; DROP TABLE jobs;--"
expect_status 202
jid=$(jqr .id)
api GET "$U/jobs/$jid"
expect_json '.spec.layers[0].text' "$S"
expect_json '.spec.layers[0].font' "$FONT"
expect_json .spec.webhook_url "$HOOK"
expect_json .metadata.note "$S"
jq -e --arg s "$S" '.metadata | has($s)' >/dev/null <<<"$BODY" || note "the metadata key changed"
api GET "$U/jobs?status=pending"
jq -e --arg id "$jid" --arg h "$HOOK" 'any(.items[]; .id == $id and .spec.webhook_url == $h)' \
    >/dev/null <<<"$BODY" || note "the webhook URL changed in the list"
# What the font may not hold is refused, not stored.
api POST $U/jobs "$(jq -cn --arg m "$MEDIA_ID" '{inputs: [{media_id: $m}],
    layers: [{type: "text", text: "x", font: "Sans'\''; DROP TABLE jobs;--"}]}')"
expect_field_error "layers[0].font"
api POST $U/jobs "$body" -H "Idempotency-Key: k'; DROP TABLE jobs;--"
expect_status 202
expect_json .id "$jid"
api GET "$U/jobs?status=pending'%20OR%201=1--"
expect_problem 422

begin "hostile text is drawn: a job with it runs and completes"
# Quotes, SQL, filter-graph syntax (';', ',', ':', '=', '[', ']', '\\'),
# drawtext expansions (%{...}) and non-ASCII, drawn literally by a worker.
T="Robert'); DROP TABLE users;-- \"q\" \\ %{pts} %{localtime} %{eif:1/0:d} [out]; a,b:c=d é Ж"
body=$(jq -cn --arg m "$MEDIA_ID" --arg t "$T" --arg f "$FONT" '{inputs: [{media_id: $m}],
    layers: [{type: "text", text: $t, font: $f, position: "center"},
             {type: "text", text: $t, position: "bottom", start: 1, end: 3}],
    output: {container: "mp4", width: 320, height: 180}}')
submit_job "$body" || note "the job: status $STATUS $(printf '%.300s' "$BODY")"
rjid=$JOB_ID
wait_job "$rjid" 240
check "the job ended $JOB_STATUS: $(jqr .error)" test "$JOB_STATUS" == completed
expect_json '.spec.layers[0].text' "$T"
expect_json '.outputs[0].name' main
expect_jq '.outputs[0].duration > 4 and .outputs[0].size > 0' "the output is not a 5 s video"

# ------------------------------------------------------------- bad JSON
nested=$(printf '{"a":%.0s' $(seq 1 100))1$(printf '}%.0s' $(seq 1 100))
big=$E2E_TMP/big.json
{ printf '{"email":"'; head -c 2000000 /dev/zero | tr '\0' a; printf '"}'; } >"$big"
bad_utf8=$'{"email":"\xff\xfe@e2e.test","password":"0123456789-pw","name":"\xc3\x28"}'
dup='{"email":"a@e2e.test","email":"b@e2e.test","password":"0123456789-pw","name":"a","name":"b"}'

for ep in auth/register auth/login auth/refresh auth/logout api-keys uploads jobs; do
    begin "bad JSON on POST /$ep: nested, oversized, non-UTF-8, duplicate keys"
    api POST "$U/$ep" "$nested"
    expect_status 400 422
    api POST "$U/$ep" - -H 'Content-Type: application/json' --data-binary "@$big"
    expect_status 413
    api POST "$U/$ep" "$bad_utf8"
    expect_status 400 422
    api POST "$U/$ep" "$dup"
    expect_status 400 422
    api POST "$U/$ep" '{"a":1'
    expect_status 400
done
begin "no account was made from bad JSON"
KEY_SAVED=$KEY
KEY=
api POST $U/auth/login '{"email":"a@e2e.test","password":"0123456789-pw"}' --interface 127.0.0.21
expect_problem 401
KEY=$KEY_SAVED

# ------------------------------------------------------------- ids of others
KEY_A=$KEY
begin "setup: A's unfinished upload"
api POST $U/uploads '{"filename":"a.mp4","size":100,"content_type":"video/mp4"}'
expect_status 201
up_a=$(jqr .upload_id)
m_a=$(jqr .media_id)
api GET $U/api-keys
k_a=$(jqr '.items[0].id')
api GET $U/me
ups_a=$(jqr .usage.uploads_in_progress)

KEY=$(new_user sec-b) || note "no user"
begin "B using A's ids: 404 on every endpoint that takes one"
for req in "GET $U/media/$MEDIA_ID" "GET $U/media/$MEDIA_ID/download" "DELETE $U/media/$MEDIA_ID" \
    "GET $U/media/$m_a" "POST $U/uploads/$up_a/complete" "GET $U/jobs/$jid" \
    "GET $U/jobs/$jid/events" "POST $U/jobs/$jid/cancel" "POST $U/jobs/$jid/retry" \
    "DELETE $U/jobs/$jid" "DELETE $U/api-keys/$k_a"; do
    read -r m p <<<"$req"
    if [[ $m == POST ]]; then api "$m" "$p" '{}'; else api "$m" "$p"; fi
    [[ $STATUS == 404 ]] || note "$req: status $STATUS, expected 404"
done
api POST $U/jobs "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}]}"
expect_field_error "inputs[0].media_id"

begin "A's objects are unchanged"
KEY=$KEY_A
api GET "$U/media/$MEDIA_ID"
expect_json .status ready
api GET "$U/jobs/$jid"
expect_json .status pending
api GET $U/api-keys
jq -e --arg id "$k_a" 'any(.items[]; .id == $id)' >/dev/null <<<"$BODY" || note "A's key is gone"
api GET $U/me
expect_json .usage.uploads_in_progress "$ups_a"

finish
