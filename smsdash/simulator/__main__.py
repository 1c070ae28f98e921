"""`python -m smsdash.simulator --host H --port N --account-sid AC... --auth-token T [knobs]`.

Serves until SIGTERM or SIGINT. Every knob is also a flag (`--callback-final-delay 5`,
`--trial --verified-numbers +1555...,+1555...`), and can be changed while it runs with
`curl -X POST http://H:N/_sim/knobs -d '{"latency": 0.1}'`.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .callbacks import HttpTransport
from .knobs import KnobError, Knobs
from .numbers import VALID_FROM
from .server import Simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m smsdash.simulator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--from-number", default=VALID_FROM, help="the number the account owns")
    parser.add_argument(
        "--messaging-service-sid",
        default=None,
        help="SID of the account's Messaging Service (default: MG + the account SID's digits)",
    )
    parser.add_argument(
        "--callback-via",
        default=None,
        metavar="URL",
        help="POST callbacks to this http://host:port instead of their URL's host, signed over the URL "
        "as given (a tunnel in front of the app)",
    )
    knobs = parser.add_argument_group("knobs (see README, 'Twilio simulator')")
    for f in dataclasses.fields(Knobs):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            knobs.add_argument(flag, dest=f.name, action="store_const", const=True, default=None)
        else:
            knobs.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper())
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs) if getattr(args, f.name) is not None}
    try:
        knobs = Knobs().updated(changes)
    except KnobError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    sim = Simulator(
        args.account_sid,
        args.auth_token,
        host=args.host,
        port=args.port,
        from_number=args.from_number,
        messaging_service_sid=args.messaging_service_sid,
        knobs=knobs,
        transport=HttpTransport(via=args.callback_via),
    ).start()
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(
        f"[simulator] Twilio simulator for {args.account_sid} on {sim.base_url} "
        f"(From {args.from_number}, Messaging Service {sim.messaging_service_sid})",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    sim.shutdown()
    print("[simulator] stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
