"""How fast every worker process and thread may send, kept in Redis: a pause and a rate.

The pause. Twilio answers 429 (20429) when the account has too many API requests in flight. That
says "slow down", about the account, not the message, so the first worker thread that hears it
pauses every sender, through one Redis key holding "no creates before T": for as long as the
answer's Retry-After asks, else an exponential backoff (SEND_RETRY_BASE_SECONDS doubling, capped
at SEND_RETRY_MAX_SECONDS) that grows while 429s keep coming and starts over after a quiet spell
as long as the last pause. A 429 that arrives while a pause is already on answers a request sent
before it began, so it does not double the pause again. Each thread checks the pause before each
create; it sleeps through a short one and resumes at a random moment over another half of its
wait, so the threads held by one 429 do not all call Twilio again in the same instant. A pause
longer than LONGEST_SLEEP_SECONDS raises SendPaused instead: the send job puts the delivery back
to wait for it, rather than holding a thread (and a worker that may be told to stop) that long.

The rate. Twilio queues what a sender cannot send yet (a US long code sends 1 segment/s) for up
to 10 hours, then fails the rest with 30001. An operator who would rather wait than overflow that
queue sets SEND_RATE_PER_SECOND. The limiter hands out send slots `1/rate` apart from one Redis
key, atomically: each caller reserves the next free slot and sleeps until it. Slots are spaced
10% wider than 1/rate so network jitter between the slot and Twilio's receipt cannot squeeze one
more send into any one-second window.

Both live in Lua scripts that read Redis's own clock, so the workers' clocks never matter.
"""

from __future__ import annotations

import logging
import random
import time

import redis

log = logging.getLogger(__name__)

KEY = "smsdash:send-rate:next-slot"
PAUSE_KEY = "smsdash:send-rate:paused-until"
STRIKES_KEY = "smsdash:send-rate:strikes"
# Widening of the slot spacing that absorbs jitter between our clock and Twilio's receipt.
JITTER_MARGIN = 0.10
# The longest a sending thread sleeps through pauses before one create; longer, the delivery is
# put back to wait (SendPaused), so a worker told to stop (Heroku allows 30 s) is not held up.
LONGEST_SLEEP_SECONDS = 5.0

# KEYS[1]: the next free slot, KEYS[2]: the pause's end (seconds, Redis clock). ARGV[1]: slot
# spacing in seconds, 0 for no rate. Returns {'paused', seconds left} while a pause is on (no slot
# is reserved then), else {'slot', seconds until the caller's slot}; numbers as strings, since
# Lua numbers returned to Redis become integers.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then
  return {'paused', string.format('%.6f', paused - now)}
end
local spacing = tonumber(ARGV[1])
if spacing <= 0 then
  return {'slot', '0'}
end
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local after = slot + spacing
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', math.ceil((after - now) * 1000) + 60000)
return {'slot', string.format('%.6f', slot - now)}
"""

# KEYS[1]: the pause's end, KEYS[2]: the strike count. ARGV: Retry-After seconds ('' if none),
# backoff base, backoff cap. Starts or extends the pause (never shortens it); returns the seconds
# it has left.
_SLOW_DOWN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
local delay
if ARGV[1] ~= '' then
  delay = tonumber(ARGV[1])
elseif paused > now then
  return string.format('%.6f', paused - now)
else
  local strikes = redis.call('INCR', KEYS[2])
  delay = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (strikes - 1))
  redis.call('PEXPIRE', KEYS[2], math.ceil(delay * 2000) + 1000)
end
local ends = math.max(paused, now + delay)
if ends > now then
  redis.call('SET', KEYS[1], string.format('%.6f', ends), 'PX', math.ceil((ends - now) * 1000) + 1000)
end
return string.format('%.6f', math.max(ends - now, 0))
"""

# KEYS[1]: the pause's end. Returns the seconds it has left (0 when there is no pause).
_REMAINING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
return string.format('%.6f', math.max(paused - now, 0))
"""


class SendPaused(Exception):
    """Sending is paused after a 429 for longer than a sending thread sleeps: nothing was sent."""

    def __init__(self, remaining: float) -> None:
        super().__init__(f"sending is paused for {remaining:.1f} s more")
        self.remaining = remaining


class SendRateLimiter:
    """Holds each create until no pause is on and (with a `rate`, messages per second across all
    workers) until its slot. `backoff_base`/`backoff_cap` shape the pause after a 429 that asks
    for no particular wait."""

    def __init__(
        self,
        connection: redis.Redis,
        rate: float | None,
        *,
        backoff_base: float,
        backoff_cap: float,
        rng: random.Random | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("SEND_RATE_PER_SECOND must be positive")
        self.spacing = (1.0 / rate) * (1 + JITTER_MARGIN) if rate else 0.0
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._reserve = connection.register_script(_RESERVE)
        self._slow_down = connection.register_script(_SLOW_DOWN)

    def wait(self) -> float:
        """Sleep through a short pause, then until this send's slot; return the seconds slept.

        Raises SendPaused when the pause would keep this thread longer than LONGEST_SLEEP_SECONDS.
        Without a rate, a Redis that cannot be reached does not stop the send: the pause is
        advice (Twilio itself answers 429 again if it still must); with a rate, it raises."""
        slept = 0.0
        while True:
            try:
                kind, raw = self._reserve(keys=[KEY, PAUSE_KEY], args=[f"{self.spacing:.6f}"])
            except redis.RedisError as exc:
                if self.spacing:
                    raise
                log.warning("could not check the shared send pause, sending anyway: %s", exc)
                return slept
            seconds = float(raw)
            if _text(kind) == "slot":
                if seconds > 0:
                    time.sleep(seconds)
                return slept + max(seconds, 0.0)
            if slept + seconds > LONGEST_SLEEP_SECONDS:
                raise SendPaused(seconds)
            nap = seconds + self._rng.uniform(0, seconds / 2)
            time.sleep(nap)
            slept += nap

    def slow_down(self, retry_after: float | None) -> float:
        """Pause every sender after a 429: for `retry_after` seconds (Twilio's Retry-After), else
        by the backoff. Returns the seconds the pause has left; 0 when Redis cannot be reached,
        since the 429 itself is still handled (the delivery waits) without the shared pause."""
        try:
            return float(
                self._slow_down(
                    keys=[PAUSE_KEY, STRIKES_KEY],
                    args=[
                        "" if retry_after is None else f"{max(retry_after, 0.0):.6f}",
                        f"{self.backoff_base:.6f}",
                        f"{self.backoff_cap:.6f}",
                    ],
                )
            )
        except redis.RedisError as exc:
            log.warning("could not pause sending after a 429: %s", exc)
            return 0.0


def pause_remaining(connection: redis.Redis) -> float:
    """Seconds the shared send pause has left (0 without one, or when Redis cannot be reached)."""
    try:
        return float(connection.register_script(_REMAINING)(keys=[PAUSE_KEY]))
    except redis.RedisError as exc:
        log.warning("could not read the shared send pause: %s", exc)
        return 0.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
