"""The Celery side of bench/jobs.sh: one task doing a kadr bench job's work.

The broker and the result backend are the Redis named by KADR_BENCH_BROKER
(redis+socket:///path). Like a kadr worker the task is acknowledged after it
ran (acks_late) and a worker process holds one task at a time (prefetch 1).

The work: cut the first END seconds of the input, decode it, and encode it
again as H.264 (libx264, veryfast) and AAC in MP4 through PyAV, the same
libav* libraries kadr's worker uses; then hash the output. What kadr does on
top (the sandboxed child, limits, progress, the probe of the output, the
storage rename, PostgreSQL rows and events) is not done here.
"""
import hashlib
import os
import time

import av
import redis
from celery import Celery

BROKER = os.environ["KADR_BENCH_BROKER"]
app = Celery("kadr_bench", broker=BROKER, backend=BROKER)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)
_runs = None


def _counter():
    global _runs
    if _runs is None:
        _runs = redis.Redis(unix_socket_path=BROKER[len("redis+socket://"):])
    return _runs


def _cut_and_encode(src, dst, end_s):
    with av.open(src) as inp, av.open(dst, "w", format="mp4") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vout = out.add_stream("libx264", rate=vin.average_rate or 25)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"preset": "veryfast"}
        aout = out.add_stream("aac", rate=ain.rate) if ain is not None else None
        streams = [vin] + ([ain] if ain is not None else [])
        for frame in inp.decode(*streams):
            if frame.time is None or frame.time >= end_s:
                continue
            frame.pts = None  # let the encoders number frames from 0
            stream = vout if isinstance(frame, av.VideoFrame) else aout
            out.mux(stream.encode(frame))
        out.mux(vout.encode(None))
        if aout is not None:
            out.mux(aout.encode(None))


@app.task(bind=True)
def transcode(self, src, out_dir, submitted_at, end_s):
    started = time.time()
    runs = _counter().incr("runs:" + self.request.id)
    dst = os.path.join(out_dir, self.request.id + ".mp4")
    tmp = dst + ".part"
    _cut_and_encode(src, tmp, end_s)
    h = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    os.replace(tmp, dst)
    return {"submitted_at": submitted_at, "started_at": started, "finished_at": time.time(),
            "runs": runs, "sha256": h.hexdigest(), "size": os.path.getsize(dst)}
