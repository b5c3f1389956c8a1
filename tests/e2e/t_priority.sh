#!/usr/bin/env bash
# Priorities are strict: with every slot busy, a priority-1 job submitted
# after a priority-10 one starts first.
. ./lib.sh

KEY=$(new_user priority) || exit 1
begin "setup: a ready sample"
sample_media || { finish; exit 1; }
media=$MEDIA_ID
end

slots=$("$KADR_BIN/kadrctl" --config "$KADR_CONFIG" config 2>/dev/null | sed -n 's/^worker_slots *= *//p')
slots=${slots:-2}

begin "priority 1 overtakes priority 10 while the $slots slots are busy"
busy=()
for ((i = 0; i < slots; i++)); do
    submit_job "{\"inputs\":[{\"media_id\":\"$media\"}],\"output\":{\"width\":1280,\"height\":720,\"preset\":\"veryslow\"}}" ||
        note "POST /jobs (busy $i): $STATUS"
    busy+=("$JOB_ID")
done
_all_busy() {
    local j
    for j in "${busy[@]}"; do
        api GET "/api/v1/jobs/$j"
        [[ $(jqr .status) == processing ]] || return 1
    done
}
if wait_until 30 _all_busy; then
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"priority\":10}" || note "POST /jobs (low): $STATUS"
    low=$JOB_ID
    submit_job "{\"inputs\":[{\"media_id\":\"$media\",\"end\":1}],\"priority\":1}" || note "POST /jobs (high): $STATUS"
    high=$JOB_ID
    if wait_job "$high" 120 && wait_job "$low" 120; then
        api GET "/api/v1/jobs/$high"
        h=$(jqr .started_at)
        api GET "/api/v1/jobs/$low"
        l=$(jqr .started_at)
        check "priority 1 started at $h, after priority 10 at $l" test "$(date -u -d "$h" +%s%3N)" -le "$(date -u -d "$l" +%s%3N)"
    fi
else
    note "the $slots slow jobs were not all processing at once"
fi
for j in "${busy[@]}"; do
    api POST "/api/v1/jobs/$j/cancel" '{}'
done

finish
