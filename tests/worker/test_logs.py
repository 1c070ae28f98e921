"""The worker's log stays readable: periodic tasks' routine lines are gone at LOG_LEVEL=info."""

from __future__ import annotations

import logging

import pytest

from smsdash.worker import logs

TASK = "smsdash.sending.reconciler.reconcile_periodic"


def _rq_lines(description: str) -> None:
    """RQ 3's four INFO lines for one successful job, with its own format strings."""
    rq = logging.getLogger("rq.worker")
    rq.info("Worker %s: %s: %s (%s)", "w1", "smsdash", description, "job-1")
    rq.info("Successfully completed %s job in %ss on worker %s", description, "0:00:00.01", "w1")
    rq.info("Worker %s: %s: %s (%s)", "w1", "smsdash", "Job OK", "job-1")
    rq.info("Worker %s: job %s result is kept for %s seconds", "w1", "job-1", 10)


@pytest.fixture(autouse=True)
def _restore_rq_logger() -> object:
    rq = logging.getLogger("rq.worker")
    before = list(rq.filters)
    yield
    rq.filters[:] = before


def test_at_info_a_periodic_task_leaves_no_line_and_a_send_job_two(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure("info", [TASK])
    with caplog.at_level(logging.INFO):
        _rq_lines(f"{TASK}()")
        _rq_lines("smsdash.jobs.send_batch([1, 2, 3])")
        logging.getLogger("rq.worker").warning("Worker %s: job %s failed", "w1", "job-2")
    lines = [r.getMessage() for r in caplog.records if r.name == "rq.worker"]
    assert not any(TASK in line for line in lines)
    assert [line for line in lines if "send_batch" in line] == [
        "Worker w1: smsdash: smsdash.jobs.send_batch([1, 2, 3]) (job-1)",
        "Successfully completed smsdash.jobs.send_batch([1, 2, 3]) job in 0:00:00.01s on worker w1",
    ]
    assert not any("Job OK" in line or "result is kept" in line for line in lines)
    assert "Worker w1: job job-2 failed" in lines  # warnings always pass


def test_at_debug_every_line_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure("debug", [TASK])
    with caplog.at_level(logging.DEBUG):
        _rq_lines(f"{TASK}()")
    assert len([r for r in caplog.records if r.name == "rq.worker"]) == 4


def test_the_apps_own_info_lines_reach_the_worker_output(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", [TASK])
    logging.getLogger("smsdash.sending.queue").info("sweeper: enqueueing %d deliveries", 5)
    logging.getLogger("smsdash.sending.queue").debug("not shown")
    err = capsys.readouterr().err
    assert "sweeper: enqueueing 5 deliveries" in err and "not shown" not in err
