"""Login throttling: a cap on log-in attempts per account and per client address, kept in Redis.

Without it anyone who can reach /login can guess passwords as fast as the server hashes them.
Each attempt takes a slot from two fixed-window counters *before* the password is checked, so
parallel guesses cannot slip in between a check and a count: one counter is keyed on the email
typed, whether or not such an operator exists (a lockout then says nothing about which emails
are real), the other on the client address (`request.remote_addr`, after ProxyFix, so
PROXY_FIX_HOPS decides whose X-Forwarded-For is believed). A success gives its slots back: the
account's counter is cleared and the address's slot returned, so colleagues behind one office
NAT are not locked out by their own log-ins. Only failures use up the budget.

When Redis cannot be reached, log-in is not throttled and a warning is logged (fail open).
Failing closed would lock every operator out of a dashboard that otherwise keeps working
without Redis (compose saves its deliveries and says the sweeper will enqueue them), in exactly
the outage they need to watch; a Redis outage is not something the login form can cause, and
every guess still costs a full password hash. The fail-fast client keeps that case from
delaying the log-in page.

Why not Flask-Limiter: it counts only failures with `deduct_when`, which tests the counter
before the view and adds to it after the response, so guesses sent in parallel all pass the
test before any is counted. Taking the slot first and giving it back on success, as here, has
no such gap; Flask-Limiter has no documented way to give a slot back.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import redis
from flask import current_app

from smsdash.redis_conn import get_redis

log = logging.getLogger(__name__)

KEY_PREFIX = "smsdash:login-attempts:"

# KEYS: the counters. ARGV[1]: the window in seconds. Each counter starts its window on first use
# and is counted up; returns each counter's value and its remaining seconds, flattened.
_TAKE = """
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  out[#out + 1] = n
  out[#out + 1] = redis.call('TTL', key)
end
return out
"""
# KEYS[1]: the address counter; returns the slot a successful log-in took. Only while the key
# still exists: a DECR on an expired key would recreate it at -1 with no expiry.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Attempt:
    """One log-in attempt's slots; `retry_after` > 0 means it is over a limit and must be refused."""

    account_key: str
    address_key: str
    retry_after: int = 0

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0

    @property
    def retry_after_minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def _keys(email: str, address: str | None) -> tuple[str, str]:
    # The email is hashed so Redis holds no list of who tried to log in as whom.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return KEY_PREFIX + "account:" + account, KEY_PREFIX + "address:" + (address or "unknown")


def take_attempt(email: str, address: str | None) -> Attempt:
    """Count a log-in attempt for this email and client address; refused when either is over its limit."""
    config = current_app.config
    account_key, address_key = _keys(email, address)
    try:
        client = get_redis(fail_fast=True)
        counts = client.register_script(_TAKE)(
            keys=[account_key, address_key], args=[config["LOGIN_FAILURE_WINDOW_SECONDS"]]
        )
    except redis.RedisError as exc:
        log.warning("login throttling is off while Redis is unreachable: %s", exc.__class__.__name__)
        return Attempt(account_key, address_key)
    account_n, account_ttl, address_n, address_ttl = (int(v) for v in counts)
    retry_after = 0
    if account_n > config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]:
        retry_after = max(retry_after, account_ttl, 1)
    if address_n > config["LOGIN_MAX_FAILURES_PER_IP"]:
        retry_after = max(retry_after, address_ttl, 1)
    return Attempt(account_key, address_key, retry_after)


def succeeded(attempt: Attempt) -> None:
    """A correct password: clear the account's failures and return the address's slot."""
    try:
        client = get_redis(fail_fast=True)
        client.delete(attempt.account_key)
        client.register_script(_GIVE_BACK)(keys=[attempt.address_key])
    except redis.RedisError as exc:
        log.warning("could not reset login attempts, Redis is unreachable: %s", exc.__class__.__name__)
