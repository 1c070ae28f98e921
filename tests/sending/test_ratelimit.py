"""The shared pause after a 429, on a real Redis: how long it lasts, who honours it, and that the
threads it held do not all come back at once. (The sender rate: test_job.py, one-second windows.)"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from smsdash.redis_conn import get_redis, shareable_url
from smsdash.sending.ratelimit import (
    LONGEST_SLEEP_SECONDS,
    PAUSE_KEY,
    STRIKES_KEY,
    SendPaused,
    SendRateLimiter,
    pause_remaining,
)

BASE, CAP = 0.01, 1.0


@pytest.fixture
def connection(app: Flask) -> Iterator[redis.Redis]:
    client = get_redis(app)
    client.delete(PAUSE_KEY, STRIKES_KEY)
    yield client


def limiter(connection: redis.Redis, seed: int = 0) -> SendRateLimiter:
    return SendRateLimiter(connection, None, backoff_base=BASE, backoff_cap=CAP, rng=random.Random(seed))


def test_without_retry_after_the_pause_doubles_while_429s_keep_coming(connection: redis.Redis) -> None:
    assert limiter(connection).slow_down(None) == pytest.approx(BASE, abs=0.005)
    connection.set(STRIKES_KEY, 3)  # three recent 429s, each after the previous pause had ended
    connection.delete(PAUSE_KEY)
    assert limiter(connection).slow_down(None) == pytest.approx(BASE * 8, abs=0.005)
    connection.set(STRIKES_KEY, 50)
    connection.delete(PAUSE_KEY)
    assert limiter(connection).slow_down(None) == pytest.approx(CAP, abs=0.005)  # capped


def test_429s_from_requests_sent_before_the_pause_do_not_lengthen_it(connection: redis.Redis) -> None:
    first = limiter(connection).slow_down(None)
    for _ in range(5):  # the other threads' requests that were in flight
        assert limiter(connection).slow_down(None) <= first
    assert int(connection.get(STRIKES_KEY) or 0) == 1


def test_retry_after_sets_the_pause_and_a_shorter_one_never_cuts_it(connection: redis.Redis) -> None:
    assert limiter(connection).slow_down(30) == pytest.approx(30, abs=0.1)
    assert limiter(connection).slow_down(2) == pytest.approx(30, abs=0.1)
    assert limiter(connection).slow_down(None) == pytest.approx(30, abs=0.1)
    assert connection.get(STRIKES_KEY) is None  # Twilio said how long: no backoff of our own


def test_a_long_pause_reaches_another_process_whose_limiter_refuses_to_send(
    app: Flask, connection: redis.Redis
) -> None:
    limiter(connection).slow_down(LONGEST_SLEEP_SECONDS * 4)
    other = redis.Redis.from_url(shareable_url(app))
    try:
        assert pause_remaining(other) > LONGEST_SLEEP_SECONDS * 3
        with pytest.raises(SendPaused) as info:
            SendRateLimiter(other, 5.0, backoff_base=BASE, backoff_cap=CAP).wait()  # with a rate, too
        assert info.value.remaining > LONGEST_SLEEP_SECONDS * 3
    finally:
        other.close()


def test_threads_held_by_a_short_pause_resume_spread_out(connection: redis.Redis) -> None:
    limiter(connection).slow_down(0.3)
    slept: list[float] = []
    lock = threading.Lock()

    def send(seed: int) -> None:
        waited = limiter(connection, seed).wait()
        with lock:
            slept.append(waited)

    threads = [threading.Thread(target=send, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(slept) == 8 and min(slept) >= 0.25  # every one waited for the pause to end
    assert max(slept) - min(slept) >= 0.03  # and not all to the same instant
    assert pause_remaining(connection) == 0


def test_without_a_rate_a_redis_that_cannot_be_reached_does_not_stop_sending() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    assert limiter(dead).wait() == 0.0
    assert limiter(dead).slow_down(None) == 0.0
    assert pause_remaining(dead) == 0.0
    with pytest.raises(redis.RedisError):  # a rate is a promise: not sending beats breaking it
        SendRateLimiter(dead, 1.0, backoff_base=BASE, backoff_cap=CAP).wait()
