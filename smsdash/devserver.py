"""`make run`: the whole app on a laptop, in one command, stopped cleanly by one Ctrl-C.

It migrates the database, holds the embedded Redis open (when REDIS_URL is unset), starts the
Twilio simulator (when no TWILIO_ credentials are set), the RQ worker and the web server, and on
Ctrl-C or SIGTERM stops every one of them, the embedded Redis included.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import Any, cast

from flask import Flask
from flask_migrate import upgrade

from smsdash import create_app
from smsdash.redis_conn import get_redis
from smsdash.team.operators import add_operator, has_operators

SIMULATOR_ACCOUNT_SID = "AC" + "0" * 31 + "1"
SIMULATOR_FROM_NUMBER = "+15005550006"
DEMO_EMAIL = "admin@smsdash.local"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for the simulator, Prism...)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} after {timeout:.0f}s")


def _uses_simulator(env: dict[str, str]) -> bool:
    return not any(env.get(k) for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"))


def _demo_operator(app: Flask) -> str | None:
    """Create a first operator on an empty database so a newcomer can log in at once."""
    with app.app_context():
        if has_operators():
            return None
        password = secrets.token_urlsafe(9)
        add_operator(DEMO_EMAIL, "admin", password)  # an admin: a newcomer tries every page
        return password


class Supervisor:
    """Starts child processes in their own process groups and stops them all together."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[Any]] = []
        self.stopping = False

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[Any]:
        shown = ["***" if prev == "--auth-token" else arg for prev, arg in zip(["", *argv], argv, strict=False)]
        print(f"[run] starting {name}: {' '.join(shown)}", flush=True)
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        self.children.append(proc)
        return proc

    def stop(self) -> None:
        self.stopping = True
        for proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def watch(self) -> int:
        """Block until a child exits (an error), a signal asks us to stop, or our parent dies.

        `make run` is our parent: a SIGTERM sent to make alone ends make but not us, so a
        change of parent means whoever started us is gone and everything should stop.
        """
        parent = os.getppid()
        while not self.stopping:
            if os.getppid() != parent:
                print("[run] the process that started us has exited; stopping", flush=True)
                return 1
            for proc in self.children:
                if proc.poll() is not None:
                    program = cast(list[str], proc.args)[0]  # start() passes an argv list
                    print(f"[run] {program} exited with code {proc.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.3)
        return 0


def _shutdown_redis(client: Any) -> None:
    """Stop the embedded redis-server; it keeps its data in instance/ for the next run."""
    try:
        client.shutdown(save=True)
    except Exception:
        pass


def main() -> int:
    env = dict(os.environ)
    port = int(env.get("PORT", "5000"))
    base = f"http://127.0.0.1:{port}"
    python = sys.executable
    supervisor = Supervisor()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    simulated = _uses_simulator(env)
    if simulated:
        sim_port = free_port()
        env.update(
            TWILIO_ACCOUNT_SID=SIMULATOR_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=secrets.token_hex(16),
            TWILIO_FROM_NUMBER=env.get("TWILIO_FROM_NUMBER") or SIMULATOR_FROM_NUMBER,
            TWILIO_API_BASE_URL=f"http://127.0.0.1:{sim_port}",
        )
    env.setdefault("BASE_HOST_URL", base)

    os.environ.update(env)  # the app built below reads the same settings as its children
    app = create_app()
    embedded = None
    try:
        with app.app_context():
            upgrade()
        password = _demo_operator(app)
        if not env.get("REDIS_URL"):
            embedded = get_redis(app)  # held open here, shut down last
            print(f"[run] embedded Redis at {app.config['EMBEDDED_REDIS_PATH']}", flush=True)
        if simulated:
            sim = supervisor.start(
                "Twilio simulator",
                [
                    python,
                    "-m",
                    "smsdash.simulator",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(sim_port),
                    "--account-sid",
                    env["TWILIO_ACCOUNT_SID"],
                    "--auth-token",
                    env["TWILIO_AUTH_TOKEN"],
                    # the simulated account owns the app's sender, number or Messaging Service
                    "--from-number",
                    env["TWILIO_FROM_NUMBER"],
                    *(
                        ["--messaging-service-sid", env["TWILIO_MESSAGING_SERVICE_SID"]]
                        if env.get("TWILIO_MESSAGING_SERVICE_SID")
                        else []
                    ),
                ],
                env,
            )
            _wait_for_port(sim_port, sim)
        supervisor.start("worker", [python, "-m", "flask", "--app", "wsgi", "worker"], env)
        web = supervisor.start(
            "web",
            [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "wsgi:app",
            ],
            env,
        )
        _wait_for_port(port, web)
        print(f"\n[run] smsdash is up: {base}/", flush=True)
        if password:
            print(f"[run] log in as {DEMO_EMAIL} with password {password}", flush=True)
        else:
            print(
                "[run] log in with an operator account (create one: .venv/bin/flask --app wsgi users create EMAIL)",
                flush=True,
            )
        print("[run] press Ctrl-C to stop everything\n", flush=True)
        return supervisor.watch()
    finally:
        supervisor.stop()
        if embedded is not None:
            _shutdown_redis(embedded)
        print("[run] stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
