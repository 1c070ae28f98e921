"""A sender rate shared by every worker process and thread, kept in Redis.

Twilio queues what a sender cannot send yet (a US long code sends 1 segment/s) for up to
10 hours, then fails the rest with 30001. An operator who would rather wait than overflow that
queue sets SEND_RATE_PER_SECOND. The limiter hands out send slots `1/rate` apart from one Redis
key, atomically (a Lua script reading Redis's own clock, so worker clocks never matter): each
caller reserves the next free slot and sleeps until it. Slots are spaced 10% wider than 1/rate
so network jitter between the slot and Twilio's receipt cannot squeeze one more send into any
one-second window.
"""

from __future__ import annotations

import time

import redis

KEY = "smsdash:send-rate:next-slot"
# Widening of the slot spacing that absorbs jitter between our clock and Twilio's receipt.
JITTER_MARGIN = 0.10

# KEYS[1]: the next free slot (seconds, Redis clock). ARGV[1]: slot spacing in seconds.
# Returns how long the caller must wait for its slot, as a string (Lua numbers become integers).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local spacing = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local after = slot + spacing
redis.call('SET', KEYS[1], string.format('%.6f', after), 'PX', math.ceil((after - now) * 1000) + 60000)
return string.format('%.6f', slot - now)
"""


class SendRateLimiter:
    """Blocks each send until its slot; `rate` is messages per second across all workers."""

    def __init__(self, connection: redis.Redis, rate: float) -> None:
        if rate <= 0:
            raise ValueError("SEND_RATE_PER_SECOND must be positive")
        self.spacing = (1.0 / rate) * (1 + JITTER_MARGIN)
        self._reserve = connection.register_script(_RESERVE)

    def wait(self) -> float:
        """Reserve the next slot and sleep until it; return the seconds slept."""
        delay = float(self._reserve(keys=[KEY], args=[f"{self.spacing:.6f}"]))
        if delay > 0:
            time.sleep(delay)
        return delay
