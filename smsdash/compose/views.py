"""The compose page: recipients (typed, contacts, groups), the message with its live segment
counter, the real recipient count, a confirm step for large sends, and Send.

Bad input never loses what the operator typed: the form comes back with every value and each
problem named. The live counters are htmx fragments from the server, which is the one place
segments and recipients are counted.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import HiddenField, TextAreaField

from smsdash.compose.recipients import Resolution, resolve
from smsdash.compose.service import Recipient, compose_message
from smsdash.contacts.search import search_contacts
from smsdash.extensions import db
from smsdash.models import Contact, Group, group_members
from smsdash.sending.queue import waiting_for_redis_note
from smsdash.sms.body import MAX_BODY_CHARS, body_problem, normalize_line_breaks
from smsdash.sms.segments import count_segments, describe_char
from smsdash.twilio.messages_api import sender_identity
from smsdash.web.form_errors import add_error

bp = Blueprint("compose", __name__)

PICKER_LIMIT = 8


def _body(value: str | None) -> str:
    return normalize_line_breaks(value or "")


class ComposeForm(FlaskForm):
    recipients = TextAreaField("Recipients")
    body = TextAreaField("Message", filters=[_body])
    confirm_count = HiddenField()


def _ids(name: str) -> list[int]:
    return list(dict.fromkeys(int(v) for v in request.values.getlist(name) if v.isdigit()))


def _resolve(form: ComposeForm) -> Resolution:
    return resolve(
        form.recipients.data or "",
        _ids("contact_ids"),
        _ids("group_ids"),
        region=current_app.config["DEFAULT_PHONE_REGION"],
        sender=sender_identity(current_app.config),
    )


def _problems(form: ComposeForm, resolution: Resolution) -> bool:
    """Attach every problem to its field; True if the message can be sent as it stands."""
    for bad in resolution.invalid:
        add_error(form.recipients, f"{bad.raw.strip()}: {bad.reason}")
    if not resolution.invalid and not resolution.recipients:
        add_error(
            form.recipients,
            "Everyone listed has opted out of texts from this sender."
            if resolution.opted_out
            else "Add at least one recipient: type a number, or pick a contact or group.",
        )
    problem = body_problem(form.body.data or "")
    if problem:
        add_error(form.body, problem)
    return not form.recipients.errors and not form.body.errors


@bp.route("/messages/new", methods=["GET", "POST"])
def new() -> tuple[str, int] | Response:
    form = ComposeForm()
    if request.method == "GET":
        return _page(form, Resolution())
    resolution = _resolve(form)
    if not form.validate_on_submit() or not _problems(form, resolution):
        return _page(form, resolution, status=422)
    count = len(resolution.recipients)
    threshold = current_app.config["LARGE_SEND_CONFIRM_THRESHOLD"]
    if count >= threshold and form.confirm_count.data != str(count):
        return _page(form, resolution, confirm=count)
    recipients = [Recipient(p, cid) for p, cid in resolution.recipients + resolution.opted_out]
    message = compose_message(form.body.data or "", recipients, author_id=current_user.id)
    note = waiting_for_redis_note(message.id)
    if note:
        flash(note, "warning")
    return redirect(url_for("messages.show", message_id=message.id))


def _page(
    form: ComposeForm, resolution: Resolution, *, status: int = 200, confirm: int | None = None
) -> tuple[str, int]:
    return render_template(
        "compose/new.html",
        form=form,
        resolution=resolution,
        confirm=confirm,
        segments=count_segments(form.body.data or ""),
        describe_char=describe_char,
        max_body_chars=MAX_BODY_CHARS,
        q="",
        chosen_contacts=resolution.contacts,
        chosen_groups=resolution.groups,
        contacts=[],
        groups=[],
        sizes=_group_sizes(resolution.groups),
    ), status


def _group_sizes(groups: list[Group]) -> dict[int, int]:
    if not groups:
        return {}
    return dict(
        db.session.execute(
            select(group_members.c.group_id, func.count())
            .where(group_members.c.group_id.in_([g.id for g in groups]))
            .group_by(group_members.c.group_id)
        ).all()
    )


@bp.post("/messages/new/segments")
def segments() -> str:
    """The live segment counter for the body being typed."""
    body = _body(request.form.get("body"))
    return render_template(
        "compose/_segments.html",
        segments=count_segments(body),
        describe_char=describe_char,
        max_body_chars=MAX_BODY_CHARS,
    )


@bp.post("/messages/new/summary")
def summary() -> str:
    """The live recipient count: valid, unique and not opted out, with what was left out."""
    return render_template("compose/_summary.html", resolution=_resolve(ComposeForm()))


@bp.get("/messages/new/pick")
def pick() -> str:
    """Contacts and groups matching the picker's search; the ones already chosen stay listed, ticked."""
    q = request.args.get("pick_q", "").strip()
    chosen_contacts = db.session.scalars(select(Contact).where(Contact.id.in_(_ids("contact_ids")))).all()
    chosen_groups = db.session.scalars(select(Group).where(Group.id.in_(_ids("group_ids")))).all()
    contacts: list[Contact] = []
    groups: list[Group] = []
    if q:
        taken = {c.id for c in chosen_contacts}
        contacts = [
            c for c in db.session.scalars(search_contacts(q).limit(PICKER_LIMIT + len(taken))) if c.id not in taken
        ][:PICKER_LIMIT]
        taken_groups = {g.id for g in chosen_groups}
        groups = [
            g
            for g in db.session.scalars(
                select(Group)
                .where(func.lower(Group.name).contains(q.lower(), autoescape=True))
                .order_by(Group.name)
                .limit(PICKER_LIMIT + len(taken_groups))
            )
            if g.id not in taken_groups
        ][:PICKER_LIMIT]
    return render_template(
        "compose/_picker.html",
        q=q,
        chosen_contacts=chosen_contacts,
        chosen_groups=chosen_groups,
        contacts=contacts,
        groups=groups,
        sizes=_group_sizes([*chosen_groups, *groups]),
    )
