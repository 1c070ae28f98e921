"""Benchmark: the message page, the inbox and a 10,000-text conversation, with their live polls, on PostgreSQL.

Seeds a scratch database (created and dropped here) with one message of `--deliveries` recipients
in a realistic mix of statuses, three events each, a contact for every fifth, and `--noise`
deliveries of other messages so the queries must use their indexes, plus one conversation of
`--texts` texts (half our deliveries to the number, half its replies) and `--conversations` other
conversations of three replies each (a tenth unread). Then prints each figure beside its target:

1. server time to render the message page's first page and its counts (in process, through
   the Flask test client with a logged-in session): median < 50 ms;
2. an unchanged poll (same version, 50 rows shown): median < 5 ms;
   and the same two figures for the inbox (/inbox and its poll), the conversation
   (/inbox/<number>, its newest page, and its poll) and the nav bar's unread badge poll;
3. CPU of ONE gunicorn worker (gthread) while `--viewers` simulated browsers poll every 2 s for
   `--seconds`, over loopback, as real htmx would: each viewer sends the version it holds and
   adopts the new one when the answer is 200: < 50 % of one core. Measured twice: quiet (nothing
   changes, every poll is "unchanged") and busy (`--changes` deliveries a second move forward,
   as callbacks would, so every poll returns the new roll-up, badges and poller).

    .venv/bin/python bench/dashboard.py --pg postgresql://postgres@127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import cpu_seconds, create_database, drop_database  # noqa: E402 (needs ROOT on sys.path)

DB_NAME = "smsdash_bench_dashboard"
SECRET = "bench-dashboard-" + "x" * 32
EMAIL, PASSWORD = "bench@example.com", "bench-password"
TARGET_PAGE_MS, TARGET_POLL_MS, TARGET_CPU = 50.0, 5.0, 50.0
# The status mix of the benchmarked message: mostly done, a quarter still in flight.
CONVERSATION = "+14155550199"
MIX = [("delivered", 55), ("undelivered", 6), ("failed", 4), ("sent", 20), ("sending", 5), ("queued", 10)]


def seed_conversations(conn: object, texts: int, conversations: int) -> None:
    """One conversation of `texts` texts, the newest in the inbox, and `conversations` others."""
    execute = conn.execute  # type: ignore[attr-defined]
    half = texts // 2
    message_id = execute(
        "INSERT INTO comms_messages (body, created_at, recipient_count)"
        " VALUES ('Shift reminder', now() - interval '2 days', %s) RETURNING id",
        (half,),
    ).fetchone()[0]
    execute(
        "INSERT INTO comms_deliveries (message_id, to_number, body, status, attempts, external_message_id,"
        " created_at, updated_at)"
        " SELECT %s, %s, 'Shift reminder ' || i, CASE WHEN i %% 10 = 0 THEN 'sent' ELSE 'delivered' END, 1,"
        " 'SM' || md5('conversation' || i), now() - interval '2 days' + (i * 2 || ' s')::interval,"
        " now() - interval '2 days' + (i * 2 || ' s')::interval FROM generate_series(1, %s) AS i",
        (message_id, CONVERSATION, half),
    )
    # The others first: ids rise with arrival, as they do when replies come in.
    execute(
        "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, num_media, media, received_at,"
        " read_at) SELECT 'SM' || md5('other' || i), '+1650' || lpad((i / 3)::text, 7, '0'), '+15005550006',"
        " 'ok ' || i, 0, '[]', now() - interval '3 days' + (i || ' s')::interval,"
        " CASE WHEN (i / 3) %% 10 <> 0 THEN now() END FROM generate_series(3, %s) AS i",
        (conversations * 3 + 2,),
    )
    execute(
        "INSERT INTO inbound_messages (message_sid, from_number, to_number, body, num_media, media, received_at,"
        " read_at) SELECT 'SM' || md5('reply' || i), %s, '+15005550006', 'running ' || i || ' min late', 0, '[]',"
        " now() - interval '2 days' + (i * 2 + 1 || ' s')::interval,"
        " CASE WHEN i <= %s - 3 THEN now() END FROM generate_series(1, %s) AS i",
        (CONVERSATION, half, half),
    )


def prepare_database(pg: str, deliveries: int, noise: int, texts: int, conversations: int) -> str:
    """Create, migrate and seed the scratch database; returns its URL."""
    create_database(pg, DB_NAME)
    url = f"{pg}/{DB_NAME}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", EMAIL, "--password", PASSWORD],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    import psycopg

    cases = " ".join(f"WHEN (i %% 100) < {sum(p for _, p in MIX[: k + 1])} THEN '{s}'" for k, (s, _) in enumerate(MIX))
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO contacts (name, phone, created_at, updated_at)"
            " SELECT 'Contact ' || i, '+1415' || lpad(i::text, 7, '0'), now(), now()"
            " FROM generate_series(1, %s) AS i",
            (deliveries // 5,),
        )
        # Older messages first (the noise), the benchmarked one last, as in a real table.
        per_noise = 1000
        for _ in range(noise // per_noise):
            conn.execute(
                "INSERT INTO comms_messages (body, created_at, recipient_count)"
                " VALUES ('older', now() - interval '1 day', %s)",
                (per_noise,),
            )
            conn.execute(
                "INSERT INTO comms_deliveries (message_id, to_number, body, status, attempts, created_at, updated_at)"
                " SELECT currval('comms_messages_id_seq'), '+1212' || lpad(i::text, 7, '0'), 'older', 'delivered', 1,"
                " now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, %s) AS i",
                (per_noise,),
            )
        message_id = conn.execute(
            "INSERT INTO comms_messages (body, created_at, recipient_count)"
            " VALUES ('Your order has shipped. Reply STOP to opt out.', now(), %s)"
            " RETURNING id",
            (deliveries,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO comms_deliveries (message_id, contact_id, to_number, body, status, error_code, attempts,"
            " external_message_id, created_at, updated_at)"
            f" SELECT %s, CASE WHEN i %% 5 = 0 THEN i / 5 END, '+1415' || lpad((i / 5)::text, 7, '0') || i %% 5,"
            " 'Your order has shipped. Reply STOP to opt out.',"
            f" CASE {cases} END, CASE WHEN (i %% 100) BETWEEN 55 AND 64 THEN 30003 END, 1,"
            " 'SM' || md5(i::text), now() - interval '10 minutes', now() - (i || ' ms')::interval"
            " FROM generate_series(1, %s) AS i",
            (message_id, deliveries),
        )
        for n, kind in enumerate(("sending", "sent", "delivered")):
            conn.execute(
                "INSERT INTO comms_events (delivery_id, event_type, source, received_at, occurred_at)"
                f" SELECT id, %s, %s, now() - interval '10 minutes' + interval '{n} seconds', NULL"
                " FROM comms_deliveries WHERE message_id = %s",
                (kind, "job" if n < 2 else "twilio", message_id),
            )
        seed_conversations(conn, texts, conversations)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm caches and the connection pool
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def in_process_figures(url: str, runs: int) -> tuple[dict[str, tuple[list[float], list[float]]], int, str]:
    """Median-able timings of each page and of its unchanged poll, through the real app stack:
    {name: (page timings, poll timings)}, the message id and the message page's poll URL."""
    os.environ.update(DATABASE_URL=url, SECRET_KEY=SECRET)
    from sqlalchemy import func, select

    from smsdash import create_app
    from smsdash.extensions import db
    from smsdash.models import Message, User

    app = create_app()
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == EMAIL))
        message_id = db.session.scalar(select(func.max(Message.id)).where(Message.body != "Shift reminder"))
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    page_url = f"/messages/{message_id}"
    html = client.get(page_url).get_data(as_text=True)
    assert "1–50 of" in html, "the page did not render its first page"
    poll_url = _poll_url(html)
    thread_url = f"/inbox/{CONVERSATION}"  # opened first: opening marks it read, which the inbox shows
    thread = client.get(thread_url).get_data(as_text=True)
    assert thread.count('<li class="text ') == 50, "the conversation did not render its newest page"
    inbox = client.get("/inbox").get_data(as_text=True)
    assert inbox.count("<tr data-number=") == 50 and f'data-number="{CONVERSATION}"' in inbox, "inbox first page"
    polls = {
        "message page, first page + counts": (page_url, poll_url),
        "inbox, first page": ("/inbox", _self_poll_url(inbox, "conversations")),
        "conversation of {texts} texts, newest page": (thread_url, _self_poll_url(thread, "thread")),
        "nav bar unread badge": (None, _self_poll_url(inbox, "nav-inbox")),
    }
    figures: dict[str, tuple[list[float], list[float]]] = {}
    for name, (page, poll) in polls.items():
        assert client.get(poll).status_code == 204, f"an unchanged poll must answer 204: {name}"
        rendered = timed(lambda page=page: client.get(page), runs) if page else []
        figures[name] = (rendered, timed(lambda poll=poll: client.get(poll), runs * 4))
    return figures, message_id, poll_url


def _self_poll_url(html: str, element_id: str) -> str:
    """The hx-get of an element that polls itself (the inbox list, a thread, the nav badge)."""
    found = re.search(rf'id="{element_id}"[^>]*?hx-get="([^"]+)"', html, re.S)
    assert found, f"no poller on #{element_id}"
    return found.group(1).replace("&amp;", "&")


def _poll_url(html: str) -> str:
    url = re.search(r'id="poller" hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    shown = re.search(r'name="shown" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    return f"{url}&shown={shown}"


@contextmanager
def gunicorn(url: str, port: int, threads: int) -> Iterator[int]:
    """One gunicorn worker serving the app; yields the worker's pid."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        yield int(children[0])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def login_cookie(port: int) -> str:
    import requests

    with requests.Session() as s:
        page = s.get(f"http://127.0.0.1:{port}/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
            r'name="csrf-token" content="([^"]+)"', page
        )
        r = s.post(
            f"http://127.0.0.1:{port}/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)},
            allow_redirects=False,
        )  # type: ignore[union-attr]
        assert r.status_code == 302, f"login failed: {r.status_code}"
        return "; ".join(f"{k}={v}" for k, v in s.cookies.items())


def viewer(
    port: int,
    cookie: str,
    first_url: str,
    offset: float,
    stop: float,
    stats: dict[str, list[float]],
    lock: threading.Lock,
) -> None:
    """One browser tab: poll every 2 s with the version it holds, like hx-trigger="every 2s"."""
    url = first_url
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    next_at = time.monotonic() + offset
    while next_at < stop:
        time.sleep(max(0.0, next_at - time.monotonic()))
        start = time.perf_counter()
        conn.request("GET", url, headers={"Cookie": cookie, "HX-Request": "true"})
        response = conn.getresponse()
        body = response.read().decode()
        elapsed = (time.perf_counter() - start) * 1000
        with lock:
            stats["204" if response.status == 204 else str(response.status)].append(elapsed)
        if response.status == 200:  # adopt the new version, keep sending the rows on screen (hx-include)
            found = re.search(r'id="poller" hx-get="([^"]+)"', body)
            if found:
                url = found.group(1).replace("&amp;", "&") + "&shown=" + first_url.split("&shown=", 1)[1]
        next_at += 2.0
    conn.close()


def changer(url: str, message_id: int, per_second: float, stop: float) -> int:
    """Move `per_second` in-flight deliveries forward each second, as callbacks would."""
    import psycopg

    moved = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < stop and per_second > 0:
            moved += conn.execute(
                "UPDATE comms_deliveries SET status = 'delivered', updated_at = now() WHERE id IN ("
                " SELECT id FROM comms_deliveries WHERE message_id = %s AND status IN ('queued','sending','sent')"
                " LIMIT %s)",
                (message_id, max(1, int(per_second))),
            ).rowcount
            time.sleep(1.0)
    return moved


def load_phase(
    url: str, message_id: int, poll_url: str, args: argparse.Namespace, worker_pid: int, cookie: str, changes: float
) -> dict[str, object]:
    stats: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = time.monotonic() + 0.5 + args.seconds
    threads = [
        threading.Thread(
            target=viewer,
            args=(args.port, cookie, poll_url, 0.5 + 2.0 * i / args.viewers, stop, stats, lock),
            daemon=True,
        )
        for i in range(args.viewers)
    ]
    cpu_before, wall_before = cpu_seconds(worker_pid), time.monotonic()
    for t in threads:
        t.start()
    moved = changer(url, message_id, changes, stop)
    time.sleep(max(0.0, stop - time.monotonic()))
    for t in threads:
        t.join(15)
    cpu = (cpu_seconds(worker_pid) - cpu_before) / (time.monotonic() - wall_before) * 100
    return {"cpu": cpu, "stats": stats, "moved": moved}


def _fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no database)"
    )
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--noise", type=int, default=20_000, help="deliveries of other messages")
    parser.add_argument("--texts", type=int, default=10_000, help="texts in the benchmarked conversation")
    parser.add_argument("--conversations", type=int, default=2_000, help="other conversations in the inbox")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--changes", type=float, default=2.0, help="deliveries changing status per second")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads in the one worker")
    parser.add_argument("--port", type=int, default=5099)
    args = parser.parse_args()

    print(f"seeding {args.deliveries} deliveries in one message (+{args.noise} in other messages) ...", flush=True)
    print(f"... and a conversation of {args.texts} texts beside {args.conversations} others", flush=True)
    url = prepare_database(args.pg, args.deliveries, args.noise, args.texts, args.conversations)
    try:
        figures, message_id, poll_url = in_process_figures(url, args.runs)
        with gunicorn(url, args.port, args.threads) as worker_pid:
            cookie = login_cookie(args.port)
            loads = [
                (label, load_phase(url, message_id, poll_url, args, worker_pid, cookie, changes))
                for label, changes in (("quiet", 0.0), ("busy", args.changes))
            ]
    finally:
        drop_database(args.pg, DB_NAME)
    rows = []
    for name, (page, poll) in figures.items():
        name = name.format(texts=args.texts)
        if page:
            rows.append((f"{name} (server time)", statistics.median(page), TARGET_PAGE_MS, "ms", _fmt(page)))
        label = name.split(",")[0]
        rows.append(
            (f"{label}: unchanged poll (server time)", statistics.median(poll), TARGET_POLL_MS, "ms", _fmt(poll))
        )
    unexpected: dict[str, int] = {}
    for label, load in loads:
        stats = load["stats"]
        assert isinstance(stats, dict)
        rows.append(
            (
                f"CPU of 1 gunicorn worker, {args.viewers} viewers polling every 2 s, {label}",
                float(load["cpu"]),  # type: ignore[arg-type]
                TARGET_CPU,
                "%",
                f"{len(stats['204'])} unchanged polls ({_fmt(stats['204'])}); "
                f"{len(stats['200'])} with changes ({_fmt(stats['200'])}); {load['moved']} deliveries moved",
            )
        )
        unexpected.update({f"{label} HTTP {k}": len(v) for k, v in stats.items() if k not in ("200", "204")})
    print(
        f"\nPostgreSQL, {args.deliveries} deliveries in one message; gunicorn gthread -w 1 --threads {args.threads};"
        f" {args.seconds:g} s of load per phase, viewers and database on the same 2-core machine"
    )
    ok = True
    for name, value, target, unit, detail in rows:
        passed = value < target
        ok &= passed
        print(
            f"{'PASS' if passed else 'FAIL'}  {name}: {value:.2f} {unit}  (target < {target:g} {unit})\n      {detail}"
        )
    if unexpected:
        print(f"unexpected answers: {unexpected}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
