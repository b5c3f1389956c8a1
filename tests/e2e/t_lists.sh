#!/usr/bin/env bash
# Listing jobs: the status filter and cursor pagination.
. ./lib.sh

KEY=$(new_user lists) || exit 1
begin "setup: media and five jobs, three cancelled"
sample_media || { finish; exit 1; }
ids=()
for i in 1 2 3 4 5; do
    # run_at far ahead: they stay pending until cancelled.
    submit_job "{\"inputs\":[{\"media_id\":\"$MEDIA_ID\"}],\"run_at\":\"2099-01-01T00:00:00Z\",\"metadata\":{\"i\":$i}}" ||
        note "POST /jobs $i: $STATUS"
    ids+=("$JOB_ID")
done
for i in 0 2 4; do
    api POST "/api/v1/jobs/${ids[$i]}/cancel" '{}'
    expect_status 200
done
end

begin "status filter"
api GET '/api/v1/jobs?status=cancelled'
expect_status 200
expect_json '[.items[].status] | unique | join(",")' cancelled
expect_json '.items | length' 3
api GET '/api/v1/jobs?status=pending'
expect_json '.items | length' 2
expect_json '[.items[].status] | unique | join(",")' pending
api GET '/api/v1/jobs?status=exploded'
expect_status 422 400

begin "cursor pagination: every job once, newest first"
seen=()
cursor=""
pages=0
while :; do
    api GET "/api/v1/jobs?limit=2${cursor:+&cursor=$cursor}"
    expect_status 200 || break
    pages=$((pages + 1))
    (( $(jqr '.items | length') <= 2 )) || note "page $pages has more than 2 items"
    mapfile -t -O "${#seen[@]}" seen < <(jqr '.items[].id')
    cursor=$(jqr '.next_cursor // empty | @uri')
    [[ -n $cursor && $pages -lt 10 ]] || break
done
check "pages $pages, expected 3" test "$pages" = 3
check "listed ${#seen[@]} jobs, expected 5" test "${#seen[@]}" = 5
check "a job listed twice" test "$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)" = 5
expected=$(printf '%s\n' "${ids[4]}" "${ids[3]}" "${ids[2]}" "${ids[1]}" "${ids[0]}")
check "not newest first" test "$(printf '%s\n' "${seen[@]}")" = "$expected"

begin "cursor with a status filter"
api GET '/api/v1/jobs?status=cancelled&limit=2'
expect_json '.items | length' 2
cursor=$(jqr '.next_cursor // empty | @uri')
check "no next_cursor on a full first page" test -n "$cursor"
api GET "/api/v1/jobs?status=cancelled&limit=2&cursor=$cursor"
expect_json '.items | length' 1
expect_json .next_cursor null

begin "media list paginates too"
api GET '/api/v1/media?limit=1'
expect_status 200
expect_json '.items | length' 1

finish
