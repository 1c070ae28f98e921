"""Benchmark: signed status callbacks per second into PostgreSQL, beside a bare Flask endpoint.

Both apps run under gunicorn with the same settings on 127.0.0.1, in the same run, driven from
loopback. Every webhook request is a real, distinct, signed callback ("delivered" for a
delivery that is "sent"), so each one validates a signature, reads the delivery, moves it and
records an event. Three phases:

1. peak rate: `wrk` (Debian package `wrk`) at fixed connections for a fixed time, against the
   bare endpoint and then the webhook; target: webhook >= 40% of bare. Two probes between them
   measure, in the same run, where the rest goes: the same app and webhook with the database
   call removed (the app's own cost: signature, parsing, Flask), and with it replaced by one
   trivial `SELECT 1` round trip (the ceiling for any design that touches the database once
   per callback before answering, as "committed before the 2xx" requires).
2. latency: an open-loop Python generator sends callbacks at half the webhook's peak rate,
   each timed from its scheduled start (so queueing counts); target: p99 < 50 ms.
3. a check that every request was answered 200 and every fresh callback left one event.

Run (needs a PostgreSQL server; creates and drops the scratch database it uses):

    .venv/bin/python bench/webhook.py --pg postgresql://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import create_database, drop_database  # noqa: E402 (needs ROOT on sys.path)

TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://bench.example.com"
STATUS_PATH = "/webhooks/twilio/status"
DB_NAME = "smsdash_bench_webhook"
TARGET_SHARE = 0.40
TARGET_P99_MS = 50.0


def bare_app() -> Flask:
    """The comparison: the same route on a Flask app that only reads the form and answers 200."""
    app = Flask("bare")

    @app.post(STATUS_PATH)
    def status() -> tuple[str, int]:
        request.form  # noqa: B018 - parse the body like any form endpoint would
        return "", 200

    return app


def probe_app(database_call: str) -> Flask:
    """The smsdash app with the webhook's database call replaced: by nothing ("none"), or by one
    `SELECT 1` on a pooled connection in autocommit mode, exactly as known_callback runs its
    statement ("select1"). Every other step (signature, parsing, Flask, gunicorn) is the real one."""
    from sqlalchemy.engine import Engine

    from smsdash.delivery.callbacks import StatusCallback
    from smsdash.delivery.status import Outcome
    from smsdash.webhooks import views as webhooks

    def apply_known(engine: Engine, callback: StatusCallback, delivery_ref: int | None) -> Outcome:
        if database_call == "select1":
            pooled = engine.raw_connection()
            try:
                pooled.driver_connection.autocommit = True
                pooled.driver_connection.execute("SELECT 1").fetchone()
                pooled.driver_connection.autocommit = False
            finally:
                pooled.close()
        return Outcome(moved=True, recorded=True)

    webhooks.apply_known = apply_known
    from wsgi import app

    return app


# --- setup -------------------------------------------------------------------------------------


def prepare_database(pg: str, deliveries: int) -> str:
    """Create the scratch database, migrate it, and seed `deliveries` sent deliveries."""
    create_database(pg, DB_NAME)
    url = f"{pg}/{DB_NAME}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 32}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO comms_messages (body, created_at, recipient_count) VALUES ('bench', now(), %s)", (deliveries,)
        )
        conn.execute(
            "INSERT INTO comms_deliveries (message_id, to_number, body, status, external_message_id, attempts,"
            " sent_at, created_at, updated_at)"
            " SELECT 1, '+1500555' || i::text, 'bench', 'sent', 'SM' || md5(i::text), 1, now(), now(), now()"
            " FROM generate_series(1, %s) AS i",
            (deliveries,),
        )
    return url


def signed_callbacks(first: int, last: int) -> list[tuple[str, str, str]]:
    """(path with query, form body, signature) of a 'delivered' callback for deliveries first..last."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)
    out = []
    for delivery_id in range(first, last + 1):
        sid = "SM" + hashlib.md5(str(delivery_id).encode()).hexdigest()
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": "delivered",
            "SmsStatus": "delivered",
            "AccountSid": "AC" + "0" * 32,
            "From": "+15005550001",
            "To": f"+1500555{delivery_id}",
            "ApiVersion": "2010-04-01",
            "RawDlrDoneDate": "2611262300",
        }
        path = f"{STATUS_PATH}?{urlencode({'d': delivery_id})}"
        out.append((path, urlencode(params), validator.compute_signature(PUBLIC_BASE + path, params)))
    return out


@contextmanager
def gunicorn(
    target: str, port: int, args: argparse.Namespace, env: dict[str, str], pythonpath: str | None = None
) -> Iterator[None]:
    """Serve `target` with the benchmark's fixed gunicorn settings until the block ends."""
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(args.workers),
        "-k",
        "gthread",
        "--threads",
        str(args.threads),
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
    ]
    if pythonpath:
        cmd += ["--pythonpath", pythonpath]
    proc = subprocess.Popen(cmd + [target], cwd=ROOT, env={**os.environ, **env}, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError:
                break  # any HTTP answer means it is serving
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"gunicorn for {target} did not start") from None
                time.sleep(0.2)
            else:
                break
        yield
    finally:
        if proc.poll() is None:  # one that failed to start has already exited
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


# --- load --------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
local items, idx, step = {}, 1, 1
local threads, counter = {}, 0
sent, mine = 0, 0
function setup(thread)
  thread:set("tid", counter); counter = counter + 1; table.insert(threads, thread)
end
function init(args)
  step = tonumber(args[2])
  for line in io.lines(args[1]) do
    local path, sig, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
    table.insert(items, {path, sig, body})
  end
  idx = tid + 1
  mine = math.floor((#items - idx) / step) + 1  -- how many distinct items this thread owns
end
function request()
  local item = items[idx]
  sent = sent + 1
  idx = idx + step
  if idx > #items then idx = (idx - 1) % #items + 1 end
  return wrk.format("POST", item[1], {["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = item[2]}, item[3])
end
function done(summary, latency, requests)
  local non2xx = summary.errors.status
  -- distinct callbacks sent (a thread that ran past its items repeated some) and whether any did
  local distinct, wrapped = 0, 0
  for _, thread in ipairs(threads) do
    local s, m = thread:get("sent"), thread:get("mine")
    distinct = distinct + math.min(s, m)
    if s > m then wrapped = 1 end
  end
  io.write(string.format("WRK_JSON {\"requests\": %d, \"distinct_sent\": %d, \"wrapped\": %d, \"seconds\": %f, " ..
    "\"non2xx\": %d, \"socket_errors\": %d, \"p50_ms\": %f, \"p99_ms\": %f}\n", summary.requests, distinct, wrapped,
    summary.duration / 1e6, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def run_wrk(port: int, data: Path, script: Path, args: argparse.Namespace, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(args.wrk_threads),
            "-c",
            str(args.connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(data),
            str(args.wrk_threads),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    result: dict[str, float] = json.loads(line[len("WRK_JSON ") :])
    result["rate"] = result["requests"] / result["seconds"]
    return result


def write_data(path: Path, callbacks: list[tuple[str, str, str]]) -> None:
    path.write_text("".join(f"{p}\t{s}\t{b}\n" for p, b, s in callbacks))


def paced(port: int, callbacks: list[tuple[str, str, str]], rate: float, seconds: float) -> dict[str, float]:
    """Open loop: request i starts at t0 + i/rate; latency counts from that scheduled start."""
    total = min(len(callbacks), int(rate * seconds))
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next(numbers)
            if i >= total:
                break
            scheduled = t0 + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            path, body, sig = callbacks[i]
            conn.request(
                "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig}
            )
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - scheduled
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    wall = time.perf_counter() - t0
    return {
        "requests": total,
        "achieved_rate": total / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "non200": sum(n for s, n in statuses.items() if s != 200),
    }


def count_events(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM comms_events WHERE source = 'twilio'").fetchone()
        return int(row[0]) if row else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no database)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    # Enough that the peak phase never repeats a callback (a repeat skips the write: cheaper).
    parser.add_argument("--deliveries", type=int, default=120000)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    url = prepare_database(args.pg, args.deliveries)
    warm_n = 2000
    peak_n = (args.deliveries - warm_n) * 2 // 3
    warm = signed_callbacks(1, warm_n)
    peak = signed_callbacks(warm_n + 1, warm_n + peak_n)
    rest = signed_callbacks(warm_n + peak_n + 1, args.deliveries)
    env = {
        "DATABASE_URL": url,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "BASE_HOST_URL": PUBLIC_BASE,
        "SECRET_KEY": "bench-" + "x" * 32,
        "REDIS_URL": args.redis_url,
    }
    settings = f"gunicorn gthread -w {args.workers} --threads {args.threads}; wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds:g}s"
    with tempfile.TemporaryDirectory() as tmp:
        script, warm_file, peak_file = Path(tmp, "signed.lua"), Path(tmp, "warm.tsv"), Path(tmp, "peak.tsv")
        script.write_text(WRK_SCRIPT)
        write_data(warm_file, warm)
        write_data(peak_file, peak)
        with gunicorn("webhook:bare_app()", args.port, args, {}, pythonpath=str(ROOT / "bench")):
            run_wrk(args.port, warm_file, script, args, 2)
            bare = run_wrk(args.port, peak_file, script, args, args.seconds)
        probes = {}
        for n, call in enumerate(("none", "select1"), start=2):
            # Nothing is written, so the peak callbacks can be replayed here.
            with gunicorn(f"webhook:probe_app({call!r})", args.port + n, args, env, pythonpath=str(ROOT / "bench")):
                run_wrk(args.port + n, warm_file, script, args, 2)
                probes[call] = run_wrk(args.port + n, peak_file, script, args, args.seconds)
        with gunicorn("wsgi:app", args.port + 1, args, env):
            warm_hook = run_wrk(args.port + 1, warm_file, script, args, 2)
            hook = run_wrk(args.port + 1, peak_file, script, args, args.seconds)
            target_rate = hook["rate"] / 2
            latency = paced(args.port + 1, rest, target_rate, args.seconds)
    events = count_events(url)
    expected = int(warm_hook["distinct_sent"] + hook["distinct_sent"] + latency["requests"])
    drop_database(args.pg, DB_NAME)

    share = hook["rate"] / bare["rate"]
    print(f"settings: {settings}; {os.cpu_count()} CPUs shared by server and load generator")
    print(
        f"bare Flask endpoint : {bare['rate']:8.0f} req/s  (p99 {bare['p99_ms']:.1f} ms, non-2xx {bare['non2xx']:.0f})"
    )
    for call, label in (("none", "webhook, no DB call "), ("select1", "webhook, SELECT 1   ")):
        print(
            f"{label}: {probes[call]['rate']:8.0f} req/s  = {probes[call]['rate'] / bare['rate']:.1%} of bare"
            f"  (non-2xx {probes[call]['non2xx']:.0f})"
        )
    print(
        f"signed webhook -> PG: {hook['rate']:8.0f} req/s  (p99 {hook['p99_ms']:.1f} ms, non-2xx {hook['non2xx']:.0f})"
    )
    print(
        f"webhook / bare      : {share:8.1%}   target >= {TARGET_SHARE:.0%}  {'PASS' if share >= TARGET_SHARE else 'FAIL'}"
        f"  (bound with one round trip per callback, measured above: {probes['select1']['rate'] / bare['rate']:.1%})"
    )
    print(
        f"paced at {target_rate:.0f} req/s (half the webhook's peak) for {args.seconds:g}s: achieved "
        f"{latency['achieved_rate']:.0f} req/s, p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
        f"max {latency['max_ms']:.1f} ms, non-200 {latency['non200']:.0f}"
    )
    print(
        f"p99 at half rate    : {latency['p99_ms']:8.1f} ms  target < {TARGET_P99_MS:.0f} ms  "
        f"{'PASS' if latency['p99_ms'] < TARGET_P99_MS else 'FAIL'}"
    )
    # Counted from what was sent: wrk stops with requests in flight that the server may not have read.
    consistent = 0 <= expected - events <= 2 * args.connections
    print(
        f"events recorded     : {events} for {expected} distinct callbacks sent "
        f"({'consistent' if consistent else 'INCONSISTENT'})"
    )
    fresh = not hook["wrapped"]
    print(
        f"peak callbacks      : {'all distinct' if fresh else 'REPEATED (raise --deliveries)'} "
        f"({hook['distinct_sent']:.0f} sent of {len(peak)})"
    )
    ok = (
        share >= TARGET_SHARE
        and latency["p99_ms"] < TARGET_P99_MS
        and hook["non2xx"] == 0
        and latency["non200"] == 0
        and consistent
        and fresh
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
