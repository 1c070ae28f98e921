"""Benchmark: 10,000 deliveries composed and sent through real workers to a Twilio simulator.

The simulator (`python -m smsdash.simulator`) answers every API call after a fixed latency
(100 ms by default, Twilio-like) with its status callbacks switched off, so the figure is the
send path alone: compose (commit every delivery, then enqueue the batches over Redis pipelines),
then RQ workers (`flask --app wsgi worker`, each a SimpleWorker with a pool of SEND_CONCURRENCY
sending threads) claiming, sending and recording every delivery in PostgreSQL.

Printed, all measured in this run:
- compose: seconds for `compose_message` with N recipients (commit + enqueue); target < 2 s;
- one-at-a-time: deliveries/s of sequential `send_sms` calls against the same simulator (its
  inverse is the measured API latency);
- bound: worker processes x concurrency / measured latency;
- drain: deliveries/s from the start of compose until the last delivery is recorded `sent`,
  beside the bound (target >= 70%) and the one-at-a-time rate (target >= 15x);
- checks: every delivery sent, the simulator saw each recipient exactly once.

Run (needs a PostgreSQL server and a redis-server; creates and drops a scratch database):

    .venv/bin/python bench/send.py
    .venv/bin/python bench/send.py --workers 2 --concurrency 32 --latency 0.1 --deliveries 10000
    .venv/bin/python bench/send.py --database-url sqlite:////tmp/bench.db   # any database URL
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import cpu_seconds, create_database, drop_database  # noqa: E402 (needs ROOT on sys.path)

ACCOUNT_SID = "AC" + "be4c" * 8
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
PUBLIC_BASE = "https://bench.example.com"
DB_NAME = "smsdash_bench_send"
TARGET_COMPOSE_S = 2.0
TARGET_SHARE = 0.70
TARGET_SPEEDUP = 15.0
PROBES = 20


def prepare_database(args: argparse.Namespace, env: dict[str, str]) -> str:
    """A fresh, migrated database: the scratch PostgreSQL one, or --database-url as given."""
    url = args.database_url
    if not url:
        create_database(args.pg, DB_NAME)
        url = f"{args.pg}/{DB_NAME}"
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env={**env, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


def start_simulator(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The simulator with status callbacks off: no web app runs here to receive them."""
    cmd = [
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
        "--callback-drop-rate",
        "1",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    base = next(word for word in line.split() if word.startswith("http://"))
    return proc, base


def simulator_messages(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/_sim/messages", timeout=60) as response:
        return json.load(response)


def start_workers(count: int, env: dict[str, str], log: str) -> list[subprocess.Popen[bytes]]:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        for _ in range(count)
    ]


def wait_for_workers(app: Any, count: int, timeout: float = 60.0) -> None:
    from rq import Worker

    from smsdash.redis_conn import get_redis

    deadline = time.monotonic() + timeout
    while len(Worker.all(connection=get_redis(app))) < count:
        if time.monotonic() > deadline:
            raise SystemExit("workers did not start")
        time.sleep(0.1)


def stop(procs: list[subprocess.Popen[Any]]) -> list[float]:
    """SIGTERM each process we started, wait, and return each one's CPU seconds (user + system)."""
    cpu: list[float] = []
    for proc in procs:
        cpu.append(cpu_seconds(proc.pid))
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return cpu


def one_at_a_time(app: Any) -> float:
    """Sequential sends: the rate a worker without a pool would reach (1 / API latency)."""
    from smsdash.twilio.messages_api import send_sms

    with app.app_context():
        send_sms("+12025550000", "warm-up", None)
        start = time.perf_counter()
        for i in range(PROBES):
            send_sms(f"+1202555{i + 1:04d}", "one at a time", None)
        return PROBES / (time.perf_counter() - start)


def count_done(app: Any) -> int:
    from sqlalchemy import func, select

    from smsdash.extensions import db
    from smsdash.models import Delivery

    with app.app_context():
        done = db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status.notin_(("queued", "sending")))
        )
        db.session.remove()
        return int(done or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no database)"
    )
    parser.add_argument("--database-url", default="", help="use this database instead of a scratch PostgreSQL one")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="a Redis db this run may flush")
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator API latency, seconds")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=0, help="SEND_CONCURRENCY (default: the app's)")
    parser.add_argument("--batch-size", type=int, default=0, help="SEND_BATCH_SIZE (default: the app's)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--worker-log", default="", help="append the workers' output to this file")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting for the drain after this")
    args = parser.parse_args()

    sim, sim_base = start_simulator(args.latency)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        env = {
            **os.environ,
            "SECRET_KEY": "bench-" + "x" * 32,
            "REDIS_URL": args.redis_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": "+15005550006",
            "TWILIO_API_BASE_URL": sim_base,
            "BASE_HOST_URL": PUBLIC_BASE,
            "TWILIO_MESSAGING_SERVICE_SID": "",
            "SEND_RATE_PER_SECOND": "",
        }
        if args.concurrency:
            env["SEND_CONCURRENCY"] = str(args.concurrency)
        if args.batch_size:
            env["SEND_BATCH_SIZE"] = str(args.batch_size)
        env["DATABASE_URL"] = prepare_database(args, env)
        os.environ.update(env)

        from smsdash import create_app
        from smsdash.compose.service import Recipient, compose_message
        from smsdash.redis_conn import get_redis

        app = create_app()
        get_redis(app).flushdb()
        concurrency = int(app.config["SEND_CONCURRENCY"])
        single = one_at_a_time(app)
        latency = 1 / single
        bound = args.workers * concurrency / latency

        workers = start_workers(args.workers, env, args.worker_log)
        wait_for_workers(app, args.workers)
        recipients = [Recipient(f"+1415{2_000_000 + i:07d}") for i in range(args.deliveries)]
        with app.app_context():
            start = time.perf_counter()
            message = compose_message("Benchmark: hello from smsdash", recipients, author_id=None)
            compose_s = time.perf_counter() - start
            message_id = message.id
        while count_done(app) < args.deliveries:
            if time.perf_counter() - start > args.timeout:
                raise SystemExit(f"drain incomplete after {args.timeout:.0f} s: {count_done(app)} done")
            time.sleep(0.05)
        drain_s = time.perf_counter() - start
        worker_cpu = stop(workers)
        workers = []
        sim_cpu = cpu_seconds(sim.pid)

        rate = args.deliveries / drain_s
        seen = [m for m in simulator_messages(sim_base) if m["to"].startswith("+1415")]
        from sqlalchemy import func, select

        from smsdash.extensions import db
        from smsdash.models import Delivery

        with app.app_context():
            sent = db.session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.message_id == message_id, Delivery.status == "sent")
            )
        print(f"database        {app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}, redis {args.redis_url}")
        print(
            f"setup           {args.workers} worker process(es) x SEND_CONCURRENCY {concurrency}, "
            f"SEND_BATCH_SIZE {app.config['SEND_BATCH_SIZE']}, simulator latency {args.latency * 1000:.0f} ms, "
            "callbacks off"
        )
        print(
            f"compose         {compose_s:.2f} s for {args.deliveries} deliveries (commit + enqueue); "
            f"target < {TARGET_COMPOSE_S:.0f} s: {'OK' if compose_s < TARGET_COMPOSE_S else 'MISSED'}"
        )
        print(f"one-at-a-time   {single:.1f} deliveries/s (measured API latency {latency * 1000:.1f} ms)")
        print(f"bound           {bound:.0f} deliveries/s ({args.workers} x {concurrency} / {latency * 1000:.1f} ms)")
        print(f"drain           {drain_s:.2f} s from compose start to the last `sent` = {rate:.0f} deliveries/s")
        print(
            f"  vs bound      {rate / bound:.0%} (target >= {TARGET_SHARE:.0%}): "
            f"{'OK' if rate >= TARGET_SHARE * bound else 'MISSED'}"
        )
        print(
            f"  vs one-at-a-time  {rate / single:.1f}x (target >= {TARGET_SPEEDUP:.0f}x): "
            f"{'OK' if rate >= TARGET_SPEEDUP * single else 'MISSED'}"
        )
        print(
            f"CPU seconds     workers {', '.join(f'{c:.1f}' for c in worker_cpu)}; simulator {sim_cpu:.1f}; "
            f"over {drain_s:.1f} s on {os.cpu_count()} cores"
        )
        print(
            f"checks          sent {sent}/{args.deliveries}; simulator saw {len(seen)} creates for "
            f"{len({m['to'] for m in seen})} distinct recipients"
        )
        ok = sent == args.deliveries and len(seen) == len({m["to"] for m in seen}) == args.deliveries
        return 0 if ok else 1
    finally:
        stop(workers)
        stop([sim])
        if not args.database_url and not args.keep:
            drop_database(args.pg, DB_NAME)


if __name__ == "__main__":
    sys.exit(main())
