"""Submits N transcode tasks as fast as possible and measures them.

    run.py --jobs N --src FILE --out-dir DIR --end SECONDS

Prints one line: RESULT system=celery jobs=... completed=... jobs_per_s=...
(first submission to last finish), submit_per_s, wait_p50_s and wait_p99_s
(started_at - submitted_at), and not_exactly_once: tasks whose body ran more
or less than once (a Redis counter per task id) or whose output is missing.
"""
import argparse
import math
import os
import time

from tasks import _counter, transcode


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[max(0, math.ceil(len(v) * p) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--end", type=float, default=0.4)
    ap.add_argument("--warmup", type=int, default=4)
    a = ap.parse_args()

    # The worker's processes are up and connected before the clock starts
    # (kadr's worker is idle and waiting, too).
    warm = [transcode.apply_async(args=[a.src, a.out_dir, time.time(), a.end])
            for _ in range(a.warmup)]
    for r in warm:
        r.get(timeout=300)

    t0 = time.time()
    pending = [transcode.apply_async(args=[a.src, a.out_dir, time.time(), a.end])
               for _ in range(a.jobs)]
    t1 = time.time()
    results, failed = [], 0
    for r in pending:
        try:
            results.append((r.id, r.get(timeout=3600)))
        except Exception:  # a failed task is counted, not fatal to the run
            failed += 1
    last = max((res["finished_at"] for _, res in results), default=t1)
    waits = [res["started_at"] - res["submitted_at"] for _, res in results]
    counter = _counter()
    bad = failed
    for tid, res in results:
        runs = int(counter.get("runs:" + tid) or 0)
        if runs != 1 or not os.path.exists(os.path.join(a.out_dir, tid + ".mp4")):
            bad += 1
    print("RESULT system=celery jobs=%d completed=%d not_completed=%d not_exactly_once=%d "
          "span_s=%.3f jobs_per_s=%.1f submit_per_s=%.0f wait_p50_s=%.3f wait_p99_s=%.3f"
          % (a.jobs, len(results), failed, bad, last - t0, len(results) / (last - t0),
             a.jobs / (t1 - t0), pct(waits, 0.50), pct(waits, 0.99)))


if __name__ == "__main__":
    main()
