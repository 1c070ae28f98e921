"""Benchmark: Messages creates per second through the Twilio simulator with a latency knob.

The send benchmark and load tests lean on the simulator, so it must not be the bottleneck: the
target is >= 300 creates/s with `latency=0.1` on this 2-core machine, while it also plays every
message's two signed callbacks. The simulator runs as `python -m smsdash.simulator` (its own
process, as under `make run`); this process drives it over loopback with `--connections`
keep-alive connections in a closed loop for `--seconds`, and counts the callbacks a small sink
receives. The ideal bound is connections / latency (each connection waits `latency` per create).

    .venv/bin/python bench/simulator.py [--connections 64] [--latency 0.1] [--seconds 5]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

ACCOUNT_SID = "AC" + "be" * 16
AUTH_TOKEN = "bench-token"
TARGET = 300.0


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with _Sink.lock:
            _Sink.count += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _start_simulator(latency: float) -> tuple[subprocess.Popen[str], int]:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smsdash.simulator",
            "--port",
            "0",
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
            "--latency",
            str(latency),
            "--callback-sent-delay",
            "0.2",
            "--callback-final-delay",
            "1.0",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    match = re.search(r"127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if not match:
        proc.kill()
        raise SystemExit("simulator did not start")
    return proc, int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    sink.daemon_threads = True
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{sink.server_address[1]}/webhooks/twilio/status"
    proc, port = _start_simulator(args.latency)
    auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    deadline = time.monotonic() + args.seconds
    counts = {"201": 0, "other": 0}
    lock = threading.Lock()

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        done = other = 0
        while time.monotonic() < deadline:
            body = urlencode(
                {
                    "To": f"+1415555{index:02d}{done % 100:02d}",
                    "From": "+15005550006",
                    "Body": "bench",
                    "StatusCallback": callback,
                }
            )
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
            )
            response = conn.getresponse()
            response.read()
            if response.status == 201:
                done += 1
            else:
                other += 1
        with lock:
            counts["201"] += done
            counts["other"] += other
        conn.close()

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        created = counts["201"]
        expected = 2 * created
        settle_deadline = time.monotonic() + 15
        while _Sink.count < expected and time.monotonic() < settle_deadline:
            time.sleep(0.2)
        rate = created / elapsed
        bound = args.connections / args.latency if args.latency else float("inf")
        print(
            json.dumps(
                {
                    "creates": created,
                    "errors": counts["other"],
                    "seconds": round(elapsed, 2),
                    "creates_per_s": round(rate, 1),
                    "target_per_s": TARGET,
                    "bound_per_s": round(bound, 1),
                    "share_of_bound": round(rate / bound, 3),
                    "callbacks_received": _Sink.count,
                    "callbacks_expected": expected,
                }
            )
        )
        ok = rate >= TARGET and counts["other"] == 0 and _Sink.count == expected
        print(
            f"{'PASS' if ok else 'FAIL'}: {rate:.0f} creates/s (target {TARGET:.0f}, ideal bound "
            f"{bound:.0f}); {_Sink.count}/{expected} callbacks"
        )
        return 0 if ok else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        sink.shutdown()


if __name__ == "__main__":
    sys.exit(main())
