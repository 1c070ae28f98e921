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
from flask_wtf.file import FileField
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional

from smsdash.auth.permissions import requires
from smsdash.compose import checked_rows, uploads
from smsdash.compose.approval import awaiting_note
from smsdash.compose.personalise import Personalisation, personalise
from smsdash.compose.recipients import Resolution, resolve
from smsdash.compose.service import ComposeRefused, Recipient, compose_message, prepare
from smsdash.compose.spreadsheet import Sheet, SpreadsheetError, check_sheet
from smsdash.contacts.search import search_contacts
from smsdash.extensions import db
from smsdash.models import Contact, Group, Message, MessageTemplate, group_members, utcnow
from smsdash.schedules.when import Later, ScheduleRefused, send_time
from smsdash.sending.queue import waiting_for_redis_note
from smsdash.sms.body import MAX_BODY_CHARS, normalize_line_breaks
from smsdash.sms.segments import count_segments, describe_char
from smsdash.twilio.messages_api import VALIDITY_MAX_SECONDS, sender_identity
from smsdash.web.form_errors import add_error

bp = Blueprint("compose", __name__)

PICKER_LIMIT = 8
SHOWN_ROW_ERRORS = 100  # bad rows listed on the page; the count says how many more
PREVIEWS = 3  # recipients whose text the preview shows without being asked


def _body(value: str | None) -> str:
    return normalize_line_breaks(value or "")


class ComposeForm(FlaskForm):
    recipients = TextAreaField("Recipients")
    body = TextAreaField("Message", filters=[_body])
    confirm_count = HiddenField()
    template_id = HiddenField()
    when = StringField("When")  # "now" or "later"; two radios on the page
    send_at = StringField("Date and time")
    send_zone = StringField("Time zone")
    ignore_quiet_hours = BooleanField("Ignore quiet hours (urgent)")
    # "Don't deliver after N minutes": Twilio's ValidityPeriod, which counts seconds.
    valid_minutes = IntegerField(
        "Don't deliver after (minutes)",
        validators=[Optional(), NumberRange(1, VALIDITY_MAX_SECONDS // 60, "Give between 1 and 600 minutes.")],
    )


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


def _recipients(resolution: Resolution) -> list[Recipient]:
    return [Recipient(p, cid) for p, cid in resolution.recipients]


def _personalise(form: ComposeForm, resolution: Resolution) -> Personalisation:
    """Each recipient's text, the way compose_message will render it (opted-out ones are not texted)."""
    return prepare(form.body.data or "", _recipients(resolution), sender_identity(current_app.config))[0]


def _problems(form: ComposeForm, resolution: Resolution, texts: Personalisation) -> bool:
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
    for problem in texts.problems():
        add_error(form.body, problem)
    return not form.recipients.errors and not form.body.errors


@bp.route("/messages/new", methods=["GET", "POST"])
@requires("send")
def new() -> tuple[str, int] | Response:
    form = ComposeForm()
    if request.method == "GET":
        _use_template(form)
        return _page(form, Resolution(), _personalise(form, Resolution()))
    resolution = _resolve(form)
    texts = _personalise(form, resolution)
    valid = form.validate_on_submit()
    later = _later(form) if valid else None
    if not valid or not _problems(form, resolution, texts) or form.send_at.errors or form.valid_minutes.errors:
        return _page(form, resolution, texts, status=422)
    count = len(resolution.recipients)
    threshold = current_app.config["LARGE_SEND_CONFIRM_THRESHOLD"]
    if count >= threshold and form.confirm_count.data != str(count):
        return _page(form, resolution, texts, confirm=count)
    recipients = [Recipient(p, cid) for p, cid in resolution.recipients + resolution.opted_out]
    try:
        message = compose_message(
            form.body.data or "",
            recipients,
            author_id=current_user.id,
            template_id=_template_id(form),
            later=later,
            validity_seconds=form.valid_minutes.data * 60 if form.valid_minutes.data else None,
            ignore_quiet_hours=bool(form.ignore_quiet_hours.data),
        )
    except ComposeRefused as refused:  # a contact changed between the check above and now
        for problem in refused.problems:
            add_error(form.body, problem)
        return _page(form, resolution, texts, status=422)
    _flash_notes(message)
    return redirect(url_for("messages.show", message_id=message.id))


def _flash_notes(message: Message) -> None:
    """What the operator should know about a send just composed: held for approval, or not yet in Redis."""
    held = awaiting_note(message)
    if held:
        flash(held, "info")
    note = waiting_for_redis_note(message.id)
    if note:
        flash(note, "warning")


def _later(form: ComposeForm) -> Later | None:
    """The "send later" time, or None for now; a bad one is attached to the date field."""
    if form.when.data != "later":
        return None
    zone_name = (form.send_zone.data or "").strip() or current_app.config["DEFAULT_TIMEZONE"]
    try:
        return send_time(
            form.send_at.data or "", zone_name, now=utcnow(), max_days=current_app.config["SCHEDULE_MAX_DAYS"]
        )
    except ScheduleRefused as refused:
        add_error(form.send_at, str(refused))
        return None


def _use_template(form: ComposeForm) -> None:
    """`?template=ID` (compose's "use a template") starts the body from that saved template."""
    chosen = request.args.get("template", type=int)
    template = db.session.get(MessageTemplate, chosen) if chosen else None
    if template is not None and template.archived_at is None:
        form.body.data, form.template_id.data = template.body, str(template.id)


def _template_id(form: ComposeForm) -> int | None:
    """The template the body came from, recorded on the message (if it still exists)."""
    raw = form.template_id.data or ""
    return (
        db.session.scalar(select(MessageTemplate.id).where(MessageTemplate.id == int(raw))) if raw.isdigit() else None
    )


def _live(texts: Personalisation) -> dict[str, object]:
    """What the segment counter and the preview show: the longest text's count, whose it is, the
    send's total, and the first few recipients' texts (or the one asked for)."""
    wanted = (request.values.get("preview_for") or "").strip().lower()
    digits = "".join(ch for ch in wanted if ch.isdigit())
    shown = texts.rendered[:PREVIEWS]
    if wanted:
        shown = [
            r for r in texts.rendered if wanted in r.label.lower() or (digits and digits in r.recipient.to_number)
        ][:1]
    return dict(
        segments=texts.longest_count or count_segments(texts.body),
        texts=texts,
        previews=shown,
        preview_for=wanted,
        describe_char=describe_char,
        max_body_chars=MAX_BODY_CHARS,
    )


def _page(
    form: ComposeForm,
    resolution: Resolution,
    texts: Personalisation,
    *,
    status: int = 200,
    confirm: int | None = None,
) -> tuple[str, int]:
    return render_template(
        "compose/new.html",
        form=form,
        resolution=resolution,
        confirm=confirm,
        templates=db.session.scalars(
            select(MessageTemplate).where(MessageTemplate.archived_at.is_(None)).order_by(MessageTemplate.name)
        ).all(),
        **_live(texts),
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
@requires("send")
def segments() -> str:
    """The live segment counter for the body being typed (its longest rendering, when it has
    placeholders), with the preview of the recipients' texts swapped in beside it."""
    form = ComposeForm()
    texts = _personalise(form, _resolve(form))
    return render_template("compose/_segments.html", preview_oob=True, **_live(texts))


@bp.post("/messages/new/summary")
@requires("send")
def summary() -> str:
    """The live recipient count: valid, unique and not opted out, with what was left out; the
    counter and preview follow, since who is sent to changes what each text says."""
    form = ComposeForm()
    resolution = _resolve(form)
    return render_template(
        "compose/_summary.html", resolution=resolution, live_oob=True, **_live(_personalise(form, resolution))
    )


@bp.get("/messages/new/pick")
@requires("send")
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


class SpreadsheetForm(FlaskForm):
    file = FileField("Spreadsheet (.csv or .xlsx)")
    body = TextAreaField("Message", filters=[_body])
    sheet = HiddenField()  # the token of the file already uploaded and checked
    sheet_name = HiddenField()


@bp.route("/messages/new/spreadsheet", methods=["GET", "POST"])
@requires("send")
def spreadsheet() -> str | Response:
    """Upload, check, then confirm: the rows read, each bad row by line and reason, and Send only
    when every row can be sent. The body and the uploaded file are kept across each step, and so
    are its rows as read and checked at upload (compose/checked_rows.py): a re-check with an
    edited body, and the confirm, only fill the body in instead of reading 50,000 rows again."""
    form = SpreadsheetForm()
    if request.method == "GET" or not form.validate_on_submit():
        return _sheet_page(form, None, status=200 if request.method == "GET" else 422)
    upload = form.file.data
    if upload and upload.filename:
        uploads.discard(form.sheet.data or "")
        token, size = uploads.keep(upload)
        form.sheet.data, form.sheet_name.data = token, upload.filename
        if size > current_app.config["SPREADSHEET_MAX_BYTES"]:
            uploads.discard(token)
            form.sheet.data = ""
            form.file.errors.append(
                f"The file is larger than {current_app.config['SPREADSHEET_MAX_BYTES'] // (1024 * 1024)} MB; split it."
            )
            return _sheet_page(form, None, status=422)
    path = uploads.path_for(form.sheet.data or "")
    if path is None:
        form.file.errors.append("Choose a spreadsheet to upload.")
        return _sheet_page(form, None, status=422)
    try:
        sheet = checked_rows.rows_for(form.sheet.data or "", path, _region())
    except SpreadsheetError as exc:
        form.file.errors.append(f"{exc}.")
        return _sheet_page(form, None, status=422)
    body = form.body.data or ""
    refused: list[str] = []
    if not sheet.errors and request.form.get("send") == str(len(sheet.recipients)):
        # The confirm: compose_message renders and refuses exactly as check_sheet would, so the
        # rows are rendered once here, and checked for the page only if the send is refused.
        try:
            message = compose_message(body, sheet.recipients, author_id=current_user.id)
        except ComposeRefused as exc:
            refused = exc.problems
        else:
            uploads.discard(form.sheet.data or "")
            _flash_notes(message)
            return redirect(url_for("messages.show", message_id=message.id))
    texts = check_sheet(sheet, body).texts
    # Bad rows are listed by line already; the body's own problems (syntax, empty) always show.
    problems = texts.problems() if texts is not None and (texts.syntax_error or not sheet.errors) else []
    if refused and not sheet.errors and not problems:
        problems = refused  # nothing a row shows: say what compose_message said
    form.body.errors.extend(problems)  # type: ignore[attr-defined]
    return _sheet_page(form, sheet, status=422 if sheet.errors or problems else 200)


def _region() -> str:
    return str(current_app.config["DEFAULT_PHONE_REGION"])


def _sheet_page(form: SpreadsheetForm, sheet: Sheet | None, *, status: int) -> str:
    texts = sheet.texts if sheet is not None and sheet.texts is not None else personalise(form.body.data or "", [])
    return render_template(
        "compose/spreadsheet.html", form=form, sheet=sheet, **_live(texts), shown_errors=SHOWN_ROW_ERRORS
    ), status  # type: ignore[return-value]
