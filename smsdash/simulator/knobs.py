"""The simulator's knobs: one typed record, set at construction, by CLI flags or at runtime.

Every knob has a safe default (a well-behaved Twilio with realistic callback delays), so a knob
is something a test or benchmark turns on deliberately. `Knobs.updated(mapping)` is the single
way to change them, shared by the constructor, the CLI and `POST /_sim/knobs`, so the three
cannot disagree about names or types.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_SCOPES = ("create", "all")
TIMEOUT_MODES = ("hang", "close")


class KnobError(ValueError):
    """An unknown knob name or a value of the wrong type or range."""


@dataclass(frozen=True)
class Knobs:
    """What the simulator does beyond answering correctly. Times are in seconds, rates in 0..1."""

    latency: float = 0.0  # added to every API request before it is answered
    error_500_rate: float = 0.0  # share of requests answered 500 (code 20500)
    error_429_rate: float = 0.0  # share of requests answered 429 (code 20429)
    retry_after: float = 0.0  # seconds a 429 answer's Retry-After header asks for; 0 sends no header
    error_scope: str = "create"  # "create": only Messages create errs; "all": every API call
    timeout_rate: float = 0.0  # share of creates accepted and recorded, then never answered
    timeout_mode: str = "hang"  # "hang": hold the connection open; "close": drop it at once
    hang_seconds: float = 30.0  # how long a hung create holds its connection (> read timeout)
    callback_sent_delay: float = 0.5  # create -> `sent` callback
    callback_final_delay: float = 2.0  # create -> final (delivered/undelivered/failed) callback
    callback_jitter: float = 0.2  # each delay varies by up to this share either way
    # Seconds an accepted message waits in the queue before it is sent (a slow sender's backlog):
    # every callback comes this much later, and a message whose ValidityPeriod is shorter fails 30036.
    queue_delay: float = 0.0
    callback_drop_rate: float = 0.0  # share of callbacks never sent (the status still changes)
    callback_reorder: bool = False  # send the final callback before `sent`
    callback_repeat: int = 0  # extra copies of every callback
    auto_reply_delay: float = 3.0  # delivered -> the auto-reply number's answer (numbers.TO_AUTO_REPLY)
    hold_callbacks: bool = False  # keep callbacks until flush_callbacks() (tests' determinism)
    trial: bool = False  # account type Trial: only verified numbers may be sent to
    smart_encoding: bool = False  # a Messaging Service's sends keep the smart-encoded body
    verified_numbers: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None  # seeds the random draws behind the rates and jitter

    def updated(self, changes: Mapping[str, Any]) -> Knobs:
        """A copy with `changes` applied, each value coerced to its knob's type and checked."""
        known = {f.name: f for f in dataclasses.fields(self)}
        coerced: dict[str, Any] = {}
        for name, raw in changes.items():
            if name not in known:
                raise KnobError(f"unknown knob {name!r}; known: {', '.join(sorted(known))}")
            coerced[name] = _coerce(name, known[name].default, raw)
        result = dataclasses.replace(self, **coerced)
        result.check()
        return result

    def check(self) -> None:
        for name in ("error_500_rate", "error_429_rate", "timeout_rate", "callback_drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KnobError(f"{name} must be between 0 and 1")
        if self.error_500_rate + self.error_429_rate > 1.0:
            raise KnobError("error_500_rate + error_429_rate must not exceed 1")
        for name in (
            "latency",
            "retry_after",
            "hang_seconds",
            "callback_sent_delay",
            "callback_final_delay",
            "callback_jitter",
            "auto_reply_delay",
            "queue_delay",
        ):
            if getattr(self, name) < 0:
                raise KnobError(f"{name} must not be negative")
        if self.callback_repeat < 0:
            raise KnobError("callback_repeat must not be negative")
        if self.error_scope not in ERROR_SCOPES:
            raise KnobError(f"error_scope must be one of {ERROR_SCOPES}")
        if self.timeout_mode not in TIMEOUT_MODES:
            raise KnobError(f"timeout_mode must be one of {TIMEOUT_MODES}")

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["verified_numbers"] = list(self.verified_numbers)
        return data


def _coerce(name: str, default: Any, raw: Any) -> Any:
    """Coerce a JSON or CLI value to the type of the knob's default."""
    try:
        if name == "verified_numbers":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if name == "seed":
            return None if raw in (None, "") else int(raw)
        if isinstance(default, bool):
            if isinstance(raw, str):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(raw)
                return raw.lower() in ("1", "true", "yes", "on")
            return bool(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise KnobError(f"bad value for {name}: {raw!r}") from exc


KNOB_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Knobs))
