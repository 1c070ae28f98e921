"""`make run`'s supervisor, end to end: it starts the whole app and stops every process it started.

Runs `python -m smsdash.devserver` (what `make run` runs) with its own INSTANCE_PATH, so SQLite,
the embedded Redis and the simulator are all fresh and nothing is shared with a developer's run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from smsdash.devserver import free_port
from tests.conftest import csrf_token_from

PROJECT_ROOT = Path(__file__).parent.parent


def _processes_with_env(marker: str) -> list[int]:
    """PIDs of live processes whose environment holds `marker`: everything the run started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # zombies are already gone
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc to find child processes")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_make_run_serves_the_app_and_stops_everything(tmp_path: Path, stop_signal: signal.Signals) -> None:
    port = free_port()
    marker = f"INSTANCE_PATH={tmp_path / 'instance'}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "DATABASE_URL", "REDIS_URL", "BASE_HOST_URL", "SECRET_KEY"))
    }
    env.update(PORT=str(port), INSTANCE_PATH=str(tmp_path / "instance"), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "smsdash.devserver"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "[run] press Ctrl-C" not in log_path.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        output = log_path.read_text()
        assert f"smsdash is up: http://127.0.0.1:{port}/" in output
        assert "starting Twilio simulator" in output and "--auth-token ***" in output
        password = re.search(r"log in as admin@smsdash.local with password (\S+)", output).group(1)

        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        assert session.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
        login = session.get(f"{base}/login", timeout=10)
        assert login.status_code == 200
        answer = session.post(
            f"{base}/login",
            timeout=10,
            allow_redirects=False,
            data={"email": "admin@smsdash.local", "password": password, "csrf_token": csrf_token_from(login.text)},
        )
        assert answer.status_code == 302
        assert session.get(f"{base}/messages", timeout=10).status_code == 200
        assert session.get(f"{base}/team", timeout=10).status_code == 200  # the demo operator is an admin

        started = _processes_with_env(marker)
        assert len(started) >= 5, started  # supervisor, simulator, worker (+ scheduler), web, redis
        os.kill(run.pid, stop_signal)
        assert run.wait(timeout=30) == 0
        deadline = time.monotonic() + 15
        while (left := _processes_with_env(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left == [], f"left running: {left}"
        assert "[run] stopped" in log_path.read_text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
