-- bench-jobs.lua: wrk script of scripts/bench-api.sh. Every request is a
-- POST /api/v1/jobs of a small, valid edit job. run_at lies far ahead so
-- that the benchmark measures the API (validation, the insert, the
-- enqueue) and not the encoder: the jobs stay pending.
local key = os.getenv("KADR_BENCH_KEY") or error("KADR_BENCH_KEY is not set")
local media = os.getenv("KADR_BENCH_MEDIA") or error("KADR_BENCH_MEDIA is not set")

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"media_id":"' .. media .. '","start":0,"end":1}],'
    .. '"layers":[{"type":"text","text":"bench","position":"bottom"}],'
    .. '"run_at":"2099-01-01T00:00:00Z","priority":10}'

-- One machine-readable line for the shell script.
done = function(summary, latency, requests)
    io.write(string.format(
        "BENCH requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
end
