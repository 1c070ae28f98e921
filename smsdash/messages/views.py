"""The messages list (also the landing page) and the message page: roll-ups, per-recipient
badges, timelines, live polling.

Live updates are htmx polls of small fragment endpoints. A poll sends the version the page
shows; when nothing changed the answer is an empty 204 after one indexed query, and once every
delivery is final the returned poller has no trigger, so the browser stops asking.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select, select
from sqlalchemy.orm import contains_eager, selectinload

from smsdash.auth.permissions import refuse, requires
from smsdash.compose.approval import REASON_MAX_LENGTH, ApprovalRefused, OwnMessage, approve, reject
from smsdash.compose.service import ComposeRefused, rewrite_scheduled
from smsdash.contacts.search import name_or_number
from smsdash.delivery.inbound import replies_to, reply_counts
from smsdash.extensions import db
from smsdash.messages.retry_wait import retry_waits
from smsdash.messages.rollup import COUNTERS, Rollup, rollup, rollups, watched_events
from smsdash.messages.timeline_view import Step, events_for, steps
from smsdash.models import Contact, Delivery, Message, utcnow
from smsdash.schedules.manage import NotScheduled, cancel, reschedule, waiting
from smsdash.schedules.quiet_hours import waiting_note
from smsdash.schedules.when import ScheduleRefused, countdown, describe, send_time, zone
from smsdash.sending.queue import waiting_for_redis_note
from smsdash.sending.retry import can_retry, retry_delivery
from smsdash.sms.body import normalize_line_breaks
from smsdash.twilio.error_codes import explain
from smsdash.web.csv_cells import as_text_cell
from smsdash.web.pagination import paginate

bp = Blueprint("messages", __name__)

MESSAGES_PER_PAGE = 20
DELIVERIES_PER_PAGE = 50
MAX_TRACKED_IDS = 200  # a poll names at most this many rows or timelines; a page shows 50
FILTERS = COUNTERS + ("canceled",)
# Statuses a counter stands for (the roll-up folds a few rare ones into the six counters).
FILTER_STATUSES = {
    "queued": ("queued", "accepted", "scheduled"),
    "delivered": ("delivered", "read", "partially_delivered"),
}


def _vary(response: Response) -> Response:
    """One URL answers with a page or an htmx fragment, so caches must key on HX-Request."""
    response.headers.add("Vary", "HX-Request")
    return response


def _ids(name: str) -> list[int]:
    """A list of ids from repeated or comma-separated query arguments, capped and de-duplicated."""
    raw = ",".join(request.args.getlist(name))
    return list(dict.fromkeys(int(p) for p in raw.split(",") if p.strip().isdigit()))[:MAX_TRACKED_IDS]


def _message_or_404(message_id: int) -> Message:
    return db.session.get(Message, message_id) or abort(404)


# ---- scheduled messages ------------------------------------------------------------------------


@bp.get("/scheduled")
@requires("view")
def scheduled() -> str:
    """What goes out next: each waiting message's time (its zone and UTC), recipients, author,
    and its edit and cancel forms. The countdowns tick in dashboard.js; the list is not polled,
    so an edit being typed is never swapped away."""
    return render_template(
        "messages/scheduled.html", entries=waiting(), describe=describe, countdown=countdown, zone_of=zone, now=utcnow()
    )


@bp.post("/scheduled/<int:message_id>/cancel")
@requires("send")
def cancel_scheduled(message_id: int) -> ResponseReturnValue:
    try:
        count = cancel(message_id, current_user)
    except NotScheduled as exc:
        flash(f"Not canceled: {exc}.", "error")
    else:
        flash(f"Message #{message_id} canceled: {count} deliveries will not be sent.", "info")
    return redirect(url_for("messages.scheduled"))


@bp.post("/scheduled/<int:message_id>/edit")
@requires("send")
def edit_scheduled(message_id: int) -> ResponseReturnValue:
    """Change the time, the text or both; a refusal changes neither (the time is checked first)."""
    message = _message_or_404(message_id)
    body = normalize_line_breaks(request.form.get("body") or "")
    zone_name = (request.form.get("send_zone") or "").strip() or (message.send_zone or "UTC")
    try:
        later = send_time(
            request.form.get("send_at") or "", zone_name, now=utcnow(), max_days=current_app.config["SCHEDULE_MAX_DAYS"]
        )
        if body and body != message.body:
            rewrite_scheduled(message_id, body, current_user)
        if (later.at, later.zone) != (message.send_at, message.send_zone):
            reschedule(message_id, later, current_user)
    except (ScheduleRefused, NotScheduled) as exc:
        flash(f"Not changed: {exc}.", "error")
    except ComposeRefused as refused:
        flash(f"Text not changed: {' '.join(refused.problems)}", "error")
    else:
        flash(f"Message #{message_id} saved: to be sent {describe(later.at, later.zone)}.", "info")
    return redirect(url_for("messages.scheduled"))


# ---- the messages list -------------------------------------------------------------------------


@bp.get("/")
@bp.get("/messages")
@requires("view")
def index() -> Response:
    """The messages list, which is also the landing page after login: what an operator checks first."""
    page = paginate(
        select(Message).options(selectinload(Message.author)).order_by(Message.created_at.desc(), Message.id.desc()),
        MESSAGES_PER_PAGE,
    )
    ups = rollups(m.id for m in page.items)
    return _vary(Response(render_template("messages/index.html", page=page, rollups=ups, version=_list_version(ups))))


def _list_version(ups: dict[int, Rollup]) -> str:
    return ".".join(f"{mid}:{up.version}" for mid, up in sorted(ups.items()))


@bp.get("/messages/poll")
@requires("view")
def index_poll() -> Response:
    """Roll-ups of the listed messages, if any changed since the version the page holds."""
    ups = rollups(_ids("ids"))
    version = _list_version(ups)
    if version == request.args.get("v"):
        return Response(status=204)
    return Response(render_template("messages/_list_poll.html", rollups=ups, version=version, ids=sorted(ups)))


# ---- one message -------------------------------------------------------------------------------


def _deliveries(message_id: int, status: str, q: str) -> Select[Delivery]:
    """A message's deliveries in id order, each with its contact's name loaded by the same join
    the search matches names through (so the page is one query, not one per contact)."""
    stmt = (
        select(Delivery)
        .outerjoin(Delivery.contact)
        .options(contains_eager(Delivery.contact).load_only(Contact.name))
        .where(Delivery.message_id == message_id)
        .order_by(Delivery.id)
    )
    if status:
        stmt = stmt.where(Delivery.status.in_(FILTER_STATUSES.get(status, (status,))))
    matches = name_or_number(Contact.name, Delivery.to_number, q)
    return stmt if matches is None else stmt.where(matches)


def _by_id(message_id: int, delivery_ids: list[int]) -> list[Delivery]:
    if not delivery_ids:
        return []
    return list(db.session.scalars(_deliveries(message_id, "", "").where(Delivery.id.in_(delivery_ids))))


def _page_of_deliveries(message_id: int, up: Rollup, status: str, q: str) -> Pagination:
    """One page of the recipient table. Without a search, the total comes from the roll-up,
    which saves a COUNT over up to 10,000+ rows on every page view."""
    total = None if q else sum(n for s, n in up.shown() if not status or s == status)
    return paginate(_deliveries(message_id, status, q), DELIVERIES_PER_PAGE, total=total)


def _status_filter() -> str:
    status = request.args.get("status", "")
    return status if status in FILTERS else ""


def _table_key(status: str, q: str, page: int) -> str:
    """The recipient table's element id for one filter, search and page. A poll's answer swaps
    the table it was asked for by this id, so an answer that arrives after the operator changed
    the filter finds no table to overwrite instead of bringing the old filter back."""
    return "rt-" + hashlib.blake2s(f"{status}\n{q}\n{page}".encode(), digest_size=6).hexdigest()


def _table(
    message_id: int,
    page: Pagination,
    status: str,
    q: str,
    kept: Sequence[Delivery] = (),
    timelines: dict[int, list[Step]] | None = None,
) -> dict[str, Any]:
    """What _recipients.html needs: the page's rows, and the `kept` rows (off the page, their
    timeline open) in id order among them, each with its waiting-to-retry note."""
    listed = [(d, False) for d in page.items] + [(d, True) for d in kept]
    listed.sort(key=lambda row: row[0].id)
    return dict(
        message_id=message_id,
        page=page,
        status=status,
        q=q,
        rows=listed,
        table_key=_table_key(status, q, page.page),
        timelines=timelines or {},
        waits=retry_waits(d for d, _ in listed),
        replies=replies_to(d.id for d, _ in listed),
    )


@bp.get("/messages/<int:message_id>")
@requires("view")
def show(message_id: int) -> Response:
    message = _message_or_404(message_id)
    status, q = _status_filter(), request.args.get("q", "")
    up = rollup(message.id)
    page = _page_of_deliveries(message.id, up, status, q)
    # The poller starts from the version its first poll will compute, which counts these rows' events.
    up = replace(up, events=watched_events([d.id for d in page.items]))
    context = dict(
        rollup=up,
        filters=FILTERS,
        explain=explain,
        retryable=can_retry,
        quiet_note=waiting_note(message),
        **_approval_context(message),
        **_table(message.id, page, status, q),
    )
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "recipients":
        return _vary(Response(render_template("messages/_recipients.html", poller_oob=True, **context)))
    return _vary(Response(render_template("messages/show.html", **context)))


def _approval_context(message: Message | None) -> dict[str, Any]:
    """What _approval.html needs; the poll sends the panel only for a message that needed approval."""
    return dict(message=message, now=utcnow(), describe=describe, reason_max=REASON_MAX_LENGTH)


def _watch(shown: list[int], open_ids: list[int]) -> list[int]:
    return list(dict.fromkeys(shown + open_ids))


@bp.get("/messages/<int:message_id>/poll")
@requires("view")
def poll(message_id: int) -> Response:
    """What changed on a message page since version `v`: 204 if nothing, else the new roll-up,
    the badges of the rows on screen and the open timelines, as out-of-band swaps.

    The version covers the rows on screen and the open timelines (`shown`, `open`), so an event
    that changes no status (a retry, a repeated callback, a note) still reaches them. Under a
    status filter, rows enter and leave as deliveries move, so a changed poll asks for the page
    again: if its rows or total differ from the table on screen (`shown`, `total`), the whole
    table is swapped, else only the badges are."""
    shown, open_ids = _ids("shown"), _ids("open")
    up = rollup(message_id, watching=_watch(shown, open_ids))
    if not up.total and db.session.get(Message, message_id) is None:
        abort(404)
    if up.version == request.args.get("v"):
        return Response(status=204)
    status = _status_filter()
    approval = _approval_context(db.session.get(Message, message_id) if up.approval else None)
    if status:
        q = request.args.get("q", "")
        page = _page_of_deliveries(message_id, up, status, q)
        listed = [d.id for d in page.items]
        if listed != shown or page.total != request.args.get("total", type=int):
            return _poll_table(message_id, up, page, status, q, open_ids, approval)
        rows = list(page.items) + _by_id(message_id, [i for i in open_ids if i not in listed])
    else:  # an unfiltered (or only searched) table keeps its rows: only their badges change
        rows = _by_id(message_id, _watch(shown, open_ids))
    deliveries = {d.id: d for d in rows}
    cells = [d for d in deliveries.values() if status or d.id in shown]
    timelines = _steps([deliveries[i] for i in open_ids if i in deliveries])
    return Response(
        render_template(
            "messages/_poll.html",
            message_id=message_id,
            rollup=up,
            explain=explain,
            retryable=can_retry,
            cells=cells,
            waits=retry_waits(cells),
            replies=replies_to(d.id for d in cells),
            timelines=[(deliveries[i], timelines[i]) for i in timelines],
            **approval,
        )
    )


def _poll_table(
    message_id: int, up: Rollup, page: Pagination, status: str, q: str, open_ids: list[int], approval: dict[str, Any]
) -> Response:
    """A filtered table whose rows or total changed, whole, in place of the one on screen. That
    one's id names the page it asked for, not the page shown now (fewer rows, fewer pages).

    Rows whose timeline is open stay even off the page (`kept`), marked. The new table watches
    other rows, so its poller carries their event count, read before their events and notes are:
    what the table shows is never older than the version it is sent with."""
    listed = [d.id for d in page.items]
    up = replace(up, events=watched_events(_watch(listed, open_ids)))
    kept = _by_id(message_id, [i for i in open_ids if i not in listed])
    deliveries = {d.id: d for d in list(page.items) + kept}
    timelines = _steps([deliveries[i] for i in open_ids if i in deliveries])
    return Response(
        render_template(
            "messages/_poll.html",
            rollup=up,
            explain=explain,
            retryable=can_retry,
            # The page the poll asked for: the table's `page` input, always a positive number.
            replaces=_table_key(status, q, request.args.get("page", 1, type=int)),
            **_table(message_id, page, status, q, kept, timelines),
            **approval,
        )
    )


def _steps(deliveries: list[Delivery]) -> dict[int, list[Step]]:
    """The timelines of these deliveries, by id, from one query."""
    events = events_for([d.id for d in deliveries])
    return {d.id: steps(events[d.id]) for d in deliveries}


@bp.get("/messages/<int:message_id>/deliveries/<int:delivery_id>/timeline")
@requires("view")
def timeline(message_id: int, delivery_id: int) -> str:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.message_id != message_id:
        abort(404)
    return render_template(
        "messages/_timeline.html",
        delivery=delivery,
        steps=_steps([delivery])[delivery_id],
        explain=explain,
        retryable=can_retry,
    )


@bp.post("/messages/<int:message_id>/deliveries/<int:delivery_id>/retry")
@requires("send")
def retry(message_id: int, delivery_id: int) -> ResponseReturnValue:
    """One click (and a confirmation in the browser): a new attempt with its own events."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.message_id != message_id:
        abort(404)
    if retry_delivery(delivery_id):
        # retry_delivery commits the reopened delivery, then hands it to Redis; when Redis cannot
        # be reached it stays queued for the sweeper, and "sending again" would not be true yet.
        waiting = db.session.scalar(select(Delivery.enqueued_at).where(Delivery.id == delivery_id)) is None
        note = waiting_for_redis_note(message_id) if waiting else None
        flash(note or f"Sending to {delivery.to_number} again.", "warning" if note else "info")
    else:
        flash(
            f"The delivery to {delivery.to_number} cannot be retried: only failures Twilio never "
            "accepted, with an error a resend can fix, can be.",
            "error",
        )
    return redirect(url_for("messages.show", message_id=message_id))


# ---- approval of a large send --------------------------------------------------------------------


@bp.post("/messages/<int:message_id>/approve")
@requires("send")
def approve_message(message_id: int) -> ResponseReturnValue:
    _message_or_404(message_id)
    try:
        released = approve(message_id, current_user)
    except OwnMessage as refused:
        return _own_message(refused)
    except ApprovalRefused as refused:
        flash(f"Not approved: {refused}", "error")
    else:
        flash(
            f"Message #{message_id} approved: sending to {released} recipients."
            if released
            else f"Message #{message_id} approved: it goes out at its scheduled time.",
            "info",
        )
    return redirect(url_for("messages.show", message_id=message_id))


@bp.post("/messages/<int:message_id>/reject")
@requires("send")
def reject_message(message_id: int) -> ResponseReturnValue:
    _message_or_404(message_id)
    try:
        canceled = reject(message_id, current_user, request.form.get("reason") or "")
    except OwnMessage as refused:
        return _own_message(refused)
    except ApprovalRefused as refused:
        flash(f"Not rejected: {refused}", "error")
    else:
        flash(f"Message #{message_id} rejected: {canceled} deliveries will not be sent.", "info")
    return redirect(url_for("messages.show", message_id=message_id))


def _own_message(refused: OwnMessage) -> ResponseReturnValue:
    """The author's own approve or reject: the page never offers it, so this is a forged or stale
    form, refused and audited like any other refused action."""
    return refuse(str(refused), needed="not the author")


# ---- export --------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "delivery_id",
    "to_number",
    "contact_name",
    "status",
    "error_code",
    "error_meaning",
    "error_action",
    "twilio_sid",
    "attempts",
    "created_at",
    "sent_at",
    "delivered_at",
    "failed_at",
    "updated_at",
    "body",
    "reply_count",
)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


@bp.get("/messages/<int:message_id>/deliveries.csv")
@requires("view")
def export(message_id: int) -> Response:
    """Every delivery of a message as CSV, streamed in chunks so 10,000+ rows need little memory."""
    _message_or_404(message_id)
    stmt = _deliveries(message_id, "", "").execution_options(yield_per=1000)
    replies = reply_counts(message_id)

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        for delivery in db.session.scalars(stmt):
            info = explain(delivery.error_code) if delivery.error_code is not None else None
            writer.writerow(
                [
                    delivery.id,
                    delivery.to_number,
                    as_text_cell(delivery.contact.name if delivery.contact else ""),
                    delivery.status,
                    delivery.error_code or "",
                    info.meaning if info else "",
                    info.action if info else "",
                    delivery.external_message_id or "",
                    delivery.attempts,
                    _iso(delivery.created_at),
                    _iso(delivery.sent_at),
                    _iso(delivery.delivered_at),
                    _iso(delivery.failed_at),
                    _iso(delivery.updated_at),
                    as_text_cell(delivery.body),
                    replies.get(delivery.id, 0),
                ]
            )
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="message-{message_id}-deliveries.csv"'
    return response
