#!/usr/bin/env python3
"""A webhook receiver for t_webhooks.sh, on a loopback port.

    webhook_receiver.py LOG_FILE PORT_FILE

Listens on 127.0.0.1 on a free port (written to PORT_FILE once listening)
and appends one JSON line per request to LOG_FILE: path, headers, body and
the status it answered. The path chooses the behaviour:

    /fail/N/...    500 to the first N requests on this path, then 200
    /redirect/...  302 to /redirect-target/... (which answers 200)
    /big/...       200 with a 2 MiB body
    /slow/S/...    200 after S seconds (logged on arrival)
    /slowonce/S/...  the first request as /slow/S/, the others at once
    anything else  200
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG, PORT_FILE = sys.argv[1], sys.argv[2]
lock = threading.Lock()
seen = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        path = self.path
        with lock:
            seen[path] = seen.get(path, 0) + 1
            n = seen[path]
        parts = path.strip("/").split("/")
        status, extra = 200, {}
        if len(parts) >= 2 and parts[0] == "fail" and n <= int(parts[1]):
            status = 500
        elif parts[0] == "redirect":
            status, extra = 302, {"Location": "/redirect-target" + path[len("/redirect"):]}
        answer = b"no thanks\n" if status == 500 else b"ok\n"
        if parts[0] == "big":
            answer = b"x" * (2 << 20)
        with lock, open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "path": path, "n": n, "answered": status,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }) + "\n")
        if len(parts) >= 2 and (parts[0] == "slow" or (parts[0] == "slowonce" and n == 1)):
            time.sleep(float(parts[1]))
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".new", "w", encoding="ascii") as f:
    f.write(str(server.server_address[1]))
os.replace(PORT_FILE + ".new", PORT_FILE)
server.serve_forever()
