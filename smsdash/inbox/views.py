"""The inbox, a conversation's thread, answering from it, and the nav bar's unread badge.

Every live part polls itself with the version it shows and gets an empty 204 after one or two
indexed statements when nothing changed (the message page's discipline, messages/views.py).
Replies never end, so these pollers never stop; they ask every few seconds.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from smsdash.audit.record import record
from smsdash.auth.permissions import requires
from smsdash.compose.service import ComposeRefused, Recipient, compose_message
from smsdash.delivery.optouts import is_opted_out
from smsdash.extensions import db
from smsdash.inbox.conversations import InboxState, conversations, inbox_state
from smsdash.inbox.threads import has_texts, mark_read, thread, thread_version
from smsdash.models import Contact, InboundMessage
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.twilio.client import get_client
from smsdash.twilio.error_codes import explain
from smsdash.twilio.media import NotTwilioMedia, open_media
from smsdash.twilio.messages_api import sender_identity

bp = Blueprint("inbox", __name__, url_prefix="/inbox")

CONVERSATIONS_PER_PAGE = 50
MAX_SHOWN = 200


@bp.app_context_processor
def _nav_badge() -> dict[str, object]:
    """`inbox_state()` for base.html's nav badge; a function, so only full pages pay for it."""
    return {"inbox_state": inbox_state}


def _vary(response: Response) -> Response:
    response.headers.add("Vary", "HX-Request")
    return response


def _list_args() -> tuple[str, bool, int]:
    page = request.args.get("page", 1, type=int) or 1
    return request.args.get("q", "").strip(), request.args.get("unread") == "1", max(page, 1)


def _list_context(state: InboxState) -> dict[str, object]:
    q, unread_only, page = _list_args()
    stmt = conversations(q, unread_only).limit(CONVERSATIONS_PER_PAGE + 1).offset((page - 1) * CONVERSATIONS_PER_PAGE)
    rows = db.session.execute(stmt).all()
    return dict(
        rows=rows[:CONVERSATIONS_PER_PAGE],
        has_next=len(rows) > CONVERSATIONS_PER_PAGE,
        q=q,
        unread_only=unread_only,
        page=page,
        state=state,
    )


@bp.get("")
@requires("view")
def index() -> Response:
    """Every conversation, newest first: who, the last text, how many are unread."""
    context = _list_context(inbox_state())
    template = "inbox/_conversations.html" if request.headers.get("HX-Request") else "inbox/index.html"
    return _vary(Response(render_template(template, **context)))


@bp.get("/poll")
@requires("view")
def poll() -> Response:
    """The conversation list again if a reply arrived or a thread was read since version `v`."""
    state = inbox_state()
    if state.version == request.args.get("v"):
        return Response(status=204)
    return Response(render_template("inbox/_conversations.html", **_list_context(state)))


@bp.get("/unread")
@requires("view")
def unread() -> Response:
    """The nav bar's Inbox link with its unread count, if it changed since version `v`."""
    state = inbox_state()
    if state.version == request.args.get("v"):
        return Response(status=204)
    return Response(render_template("inbox/_nav.html", state=state, current=request.args.get("current") == "1"))


# ---- one conversation ----------------------------------------------------------------------------


def _before() -> datetime | None:
    raw = request.args.get("before")
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _cannot_reply(number: str) -> str | None:
    """Why the reply box cannot send to `number`, in the operator's words; None if it can."""
    try:
        e164 = number.startswith("+") and normalize(number) == number
    except InvalidNumber:
        e164 = False
    if not e164:
        return "This sender is not a phone number (a short code or a name): it cannot be texted back."
    if is_opted_out(number, sender_identity()):
        return "This number opted out (replied STOP): nothing can be sent to it until it texts START."
    return None


def _thread_context(number: str) -> dict[str, object]:
    shown = thread(number, _before())
    return dict(
        number=number,
        contact=db.session.scalar(select(Contact).where(Contact.phone == number)),
        thread=shown,
        version=thread_version(number, shown.delivery_ids),
        explain=explain,
        before=request.args.get("before", ""),
    )


@bp.get("/<path:number>")
@requires("view")
def conversation(number: str) -> Response:
    """The thread with `number`; opening it marks its replies read for the whole team."""
    if not has_texts(number):
        abort(404)
    if mark_read(number):
        db.session.commit()
    context = _thread_context(number)
    return _vary(
        Response(render_template("inbox/conversation.html", cannot_reply=_cannot_reply(number), body="", **context))
    )


@bp.get("/poll/<path:number>")
@requires("view")
def thread_poll(number: str) -> Response:
    """The thread again if a text arrived or a badge on screen moved since version `v`. The
    operator is looking at it, so replies that arrive meanwhile are read."""
    shown = [int(p) for p in request.args.get("shown", "").split(",") if p.isdigit()][:MAX_SHOWN]
    if thread_version(number, shown) == request.args.get("v"):
        return Response(status=204)
    if mark_read(number):
        db.session.commit()
    return Response(render_template("inbox/_thread.html", **_thread_context(number)))


@bp.post("/<path:number>")
@requires("send")
def reply(number: str) -> ResponseReturnValue:
    """Answer from the thread: a one-recipient message through the compose pipeline, so
    opt-outs, segments, personalisation and the state machine apply as to any send.

    The audit entry (target: the reply being answered) is added first, so compose's one commit
    writes it with the message; a refused reply rolls both back."""
    if not has_texts(number):
        abort(404)
    body = request.form.get("body", "")
    refusal = _cannot_reply(number)
    if refusal is None:
        contact_id = db.session.scalar(select(Contact.id).where(Contact.phone == number))
        answered = db.session.scalar(select(func.max(InboundMessage.id)).where(InboundMessage.from_number == number))
        record("inbox.reply", "inbound", answered, details={"to": number})
        try:
            compose_message(body, [Recipient(number, contact_id)], author_id=current_user.id)
        except ComposeRefused as exc:
            db.session.rollback()
            refusal = " ".join(exc.problems)
        else:
            flash("Reply sent.", "info")
            return redirect(url_for("inbox.conversation", number=number))
    context = _thread_context(number)
    html = render_template(
        "inbox/conversation.html", cannot_reply=_cannot_reply(number), body=body, refused=refusal, **context
    )
    return Response(html, 422)


@bp.get("/media/<int:reply_id>/<int:n>")
@requires("view")
def media(reply_id: int, n: int) -> Response:
    """Attachment `n` of a reply, fetched from Twilio with the account's credentials and streamed
    on: the browser sees our URL only, never Twilio's or the token."""
    found = db.session.get(InboundMessage, reply_id)
    if found is None or not 0 <= n < len(found.media):
        abort(404)
    url = found.media[n]["url"]
    db.session.commit()  # end the read transaction before calling out (twilio/client.py)
    try:
        upstream = open_media(get_client(), url)
    except NotTwilioMedia:
        abort(404)
    if upstream.status_code != 200:
        upstream.close()
        return Response("The attachment could not be fetched from Twilio.\n", 502, mimetype="text/plain")
    content_type = upstream.headers.get("Content-Type", "application/octet-stream")
    response = Response(upstream.iter_content(64 * 1024), mimetype=content_type)
    response.call_on_close(upstream.close)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
