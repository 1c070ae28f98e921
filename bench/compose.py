"""Benchmark: personalised compose against plain compose, and reading a 50,000-row spreadsheet.

    .venv/bin/python bench/compose.py [--recipients 10000] [--rows 50000] [--rounds 3] [--pg URL]

Measured in the same run, on the same database (SQLite in a scratch folder by default; --pg
takes a PostgreSQL server URL and uses a scratch database on it):
- compose: seconds for `compose_message` to N contacts with one body, and with a body of three
  placeholders filled from each contact's name and fields (median of the rounds, run alternately).
  Bound: personalised < 2x plain.
- spreadsheet: seconds and peak Python memory (tracemalloc) while `read_sheet` reads and checks
  an R-row CSV and the same rows as XLSX. Bound: < 100 MB each.
- the spreadsheet page, end to end through the app (a logged-in test client): the upload that
  reads and checks the R rows, then the confirm that sends to all of them, CSV and XLSX. Bound:
  each request < 30 s, gunicorn's default timeout for one web request (half of it, 15 s, is the
  aim: the machine the page runs on may be slower than this one).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_database, drop_database

PLAIN = "Your shift starts soon: please be on site ten minutes early. Reply STOP to opt out."
PERSONAL = "Hi {{first_name}}, your shift at {{site}} starts at {{time|9:00}}. Reply STOP to opt out."
SHEET_BODY = "Hi {{name}}, your shift at {{site}} starts at {{time|9:00}}"
MB = 1024 * 1024
REQUEST_BOUND = 30.0  # seconds: gunicorn kills a worker whose request takes longer
PASSWORD = "bench-password-1"


def _app(db_url: str, instance: str):  # type: ignore[no-untyped-def]
    from flask_migrate import upgrade

    from smsdash import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "INSTANCE_PATH": instance, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
    return app


def _contacts(app, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert, select

    from smsdash.extensions import db
    from smsdash.models import Contact, ContactField

    with app.app_context():
        db.session.execute(
            insert(Contact), [{"name": f"Person {i} Example", "phone": f"+1415{2_000_000 + i:07d}"} for i in range(n)]
        )
        ids = list(db.session.scalars(select(Contact.id).order_by(Contact.id)))
        fields = [{"contact_id": cid, "name": "site", "value": f"Site {cid % 40}"} for cid in ids]
        fields += [{"contact_id": cid, "name": "time", "value": "8:30"} for cid in ids[::2]]
        db.session.execute(insert(ContactField), fields)
        db.session.commit()
        return ids


def _compose(app, body: str, ids: list[int]) -> float:  # type: ignore[no-untyped-def]
    from smsdash.compose.service import Recipient, compose_message
    from smsdash.redis_conn import get_redis

    recipients = [Recipient(f"+1415{2_000_000 + i:07d}", cid) for i, cid in enumerate(ids)]
    with app.app_context():
        start = time.perf_counter()
        compose_message(body, recipients, author_id=None)
        elapsed = time.perf_counter() - start
    get_redis(app).flushdb()  # the next round enqueues onto an empty queue, as this one did
    return elapsed


def _write_sheets(folder: Path, rows: int) -> tuple[Path, Path]:
    from openpyxl import Workbook

    csv_path, xlsx_path = folder / "sheet.csv", folder / "sheet.xlsx"
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    header = ["Name", "Phone", "Site", "Time", "Team"]
    sheet.append(header)
    with csv_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for i in range(rows):
            row = [f"Person {i}", f"+1415{2_000_000 + i:07d}", f"Site {i % 40}", "8:30" if i % 2 else "", "Blue"]
            writer.writerow(row)
            sheet.append(row)
    book.save(xlsx_path)
    return csv_path, xlsx_path


def _read(app, path: Path) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    from smsdash.compose.spreadsheet import read_sheet

    with app.app_context(), path.open("rb") as stream:
        start = time.perf_counter()
        read_sheet(stream, path.name, SHEET_BODY, "US")
        elapsed = time.perf_counter() - start
    # A second read under tracemalloc for the peak (tracing slows it several times over).
    with app.app_context(), path.open("rb") as stream:
        tracemalloc.start()
        sheet = read_sheet(stream, path.name, SHEET_BODY, "US")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert not sheet.errors, sheet.errors[:3]
    return elapsed, peak / MB, len(sheet.recipients)


def _login(app):  # type: ignore[no-untyped-def]
    from smsdash.extensions import db
    from smsdash.models import User

    with app.app_context():
        user = User(email="bench@example.com")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    client = app.test_client()
    response = client.post(
        "/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": _csrf(client, "/login")}
    )
    assert response.status_code == 302, response.status_code
    return client


def _csrf(client, page: str) -> str:  # type: ignore[no-untyped-def]
    html = client.get(page).get_data(as_text=True)
    return html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]


def _page(app, client, path: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds for the page's check (upload, read, check) and for its confirm (send to every row)."""
    from smsdash.redis_conn import get_redis

    url = "/messages/new/spreadsheet"
    token = _csrf(client, url)
    with path.open("rb") as stream:
        start = time.perf_counter()
        checked = client.post(
            url,
            data={"csrf_token": token, "body": SHEET_BODY, "file": (stream, path.name)},
            content_type="multipart/form-data",
        )
        check = time.perf_counter() - start
    html = checked.get_data(as_text=True)
    assert checked.status_code == 200, html[:2000]
    sheet = html.split('name="sheet" type="hidden" value="')[1].split('"')[0]
    count = html.split('name="send" value="')[1].split('"')[0]
    start = time.perf_counter()
    sent = client.post(
        url,
        data={"csrf_token": token, "body": SHEET_BODY, "sheet": sheet, "sheet_name": path.name, "send": count},
        content_type="multipart/form-data",
    )
    confirm = time.perf_counter() - start
    assert sent.status_code == 302, sent.get_data(as_text=True)[:2000]
    get_redis(app).flushdb()
    return check, confirm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", help="PostgreSQL server URL, e.g. postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smsdash-bench-compose-") as scratch:
        folder = Path(scratch)
        db_url = f"sqlite:///{folder / 'bench.db'}"
        if args.pg:
            create_database(args.pg, "smsdash_bench_compose")
            db_url = f"{args.pg}/smsdash_bench_compose".replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            app = _app(db_url, str(folder / "instance"))
            ids = _contacts(app, args.recipients)
            plain, personal = [], []
            for _ in range(args.rounds):
                plain.append(_compose(app, PLAIN, ids))
                personal.append(_compose(app, PERSONAL, ids))
            p, q = statistics.median(plain), statistics.median(personal)
            print(f"compose {args.recipients} recipients, one body:      {p:.3f} s (median of {args.rounds})")
            print(f"compose {args.recipients} recipients, personalised:  {q:.3f} s = {q / p:.2f}x plain (bound < 2x)")
            csv_path, xlsx_path = _write_sheets(folder, args.rows)
            verdicts = [q / p < 2]
            for path in (csv_path, xlsx_path):
                seconds, peak, count = _read(app, path)
                size = path.stat().st_size / MB
                print(
                    f"read {count} rows of {path.suffix} ({size:.1f} MB file): {seconds:.2f} s, "
                    f"peak {peak:.1f} MB (bound < 100 MB)"
                )
                verdicts.append(peak < 100)
            client = _login(app)
            for path in (csv_path, xlsx_path):
                check, confirm = _page(app, client, path)
                print(
                    f"page, {args.rows} rows of {path.suffix}: check {check:.2f} s, confirm and send {confirm:.2f} s "
                    f"(bound < {REQUEST_BOUND:.0f} s each)"
                )
                verdicts.append(max(check, confirm) < REQUEST_BOUND)
        finally:
            if args.pg:
                drop_database(args.pg, "smsdash_bench_compose")
    print("OK" if all(verdicts) else "OVER A BOUND")
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
