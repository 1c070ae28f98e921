"""Saved templates: list, create, edit, duplicate and archive, with compose's live preview.

A message copies its template's body when it is composed, so editing or archiving a template
changes no message already sent. Archiving (not deleting) keeps the name those messages show.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import StringField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length

from smsdash.audit.record import record
from smsdash.auth.permissions import requires
from smsdash.compose.personalise import Personalisation, Recipient, personalise
from smsdash.extensions import db
from smsdash.models import NAME_MAX_LENGTH, Contact, MessageTemplate, utcnow
from smsdash.sms.body import MAX_BODY_CHARS, normalize_line_breaks
from smsdash.sms.placeholders import body_syntax_problem
from smsdash.sms.segments import count_segments, describe_char

bp = Blueprint("message_templates", __name__)

SAMPLE_CONTACTS = 3  # a template has no recipients yet: its preview fills it in for the first contacts


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class TemplateForm(FlaskForm):
    name = StringField(
        "Name", filters=[_strip], validators=[DataRequired("Name the template."), Length(max=NAME_MAX_LENGTH)]
    )
    body = TextAreaField(
        "Message", filters=[lambda v: normalize_line_breaks(v or "")], validators=[DataRequired("Write the text.")]
    )

    def __init__(self, *args: object, template_id: int | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.template_id = template_id

    def validate_name(self, field: StringField) -> None:
        clash = db.session.scalar(
            select(MessageTemplate.id).where(
                MessageTemplate.name == field.data, MessageTemplate.id != (self.template_id or 0)
            )
        )
        if clash is not None:
            raise ValidationError(f"A template named {field.data!r} already exists.")

    def validate_body(self, field: TextAreaField) -> None:
        problem = body_syntax_problem(field.data or "")
        if problem:
            raise ValidationError(problem)


def _template_or_404(template_id: int) -> MessageTemplate:
    return db.session.get(MessageTemplate, template_id) or abort(404)


def _sample(body: str) -> Personalisation:
    contacts = db.session.execute(select(Contact.phone, Contact.id).order_by(Contact.id).limit(SAMPLE_CONTACTS))
    return personalise(body, [Recipient(phone, cid) for phone, cid in contacts])


def _live(body: str) -> dict[str, object]:
    texts = _sample(body)
    return dict(
        texts=texts,
        previews=texts.rendered,
        preview_for="",
        segments=texts.longest_count or count_segments(body),
        describe_char=describe_char,
        max_body_chars=MAX_BODY_CHARS,
    )


@bp.get("/templates")
@requires("view")
def index() -> str:
    show_archived = request.args.get("archived") == "1"
    stmt = select(MessageTemplate).order_by(func.lower(MessageTemplate.name))
    stmt = stmt.where(
        MessageTemplate.archived_at.is_not(None) if show_archived else MessageTemplate.archived_at.is_(None)
    )
    return render_template(
        "message_templates/index.html", templates=db.session.scalars(stmt).all(), show_archived=show_archived
    )


@bp.route("/templates/new", methods=["GET", "POST"])
@requires("send")
def new() -> str | Response:
    form = TemplateForm()
    if form.validate_on_submit():
        template = MessageTemplate(name=form.name.data, body=form.body.data)
        db.session.add(template)
        db.session.flush()
        record("template.create", "template", template.id, details={"name": template.name})
        db.session.commit()
        flash(f"Saved the template {template.name}.", "info")
        return redirect(url_for("message_templates.index"))
    return _form_page(form, "New template")


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@requires("send")
def edit(template_id: int) -> str | Response:
    template = _template_or_404(template_id)
    form = TemplateForm(obj=template, template_id=template.id)
    if form.validate_on_submit():
        was = {"name": template.name, "body": template.body}
        template.name, template.body = form.name.data or template.name, form.body.data or template.body
        changed = [key for key, old in was.items() if getattr(template, key) != old]
        record("template.edit", "template", template.id, details={"name": template.name, "changed": changed})
        db.session.commit()
        flash(f"Saved the template {template.name}. Messages already sent keep their text.", "info")
        return redirect(url_for("message_templates.index"))
    return _form_page(form, f"Edit {template.name}", template)


def _form_page(form: TemplateForm, title: str, template: MessageTemplate | None = None) -> str:
    return render_template(
        "message_templates/form.html", form=form, title=title, template=template, **_live(form.body.data or "")
    ), 422 if form.errors else 200  # type: ignore[return-value]


@bp.post("/templates/preview")
@requires("send")
def preview() -> str:
    """The live counter and preview for the body being typed, filled in for the first contacts."""
    return render_template(
        "compose/_segments.html", preview_oob=True, **_live(normalize_line_breaks(request.form.get("body", "")))
    )


@bp.post("/templates/<int:template_id>/duplicate")
@requires("send")
def duplicate(template_id: int) -> Response:
    original = _template_or_404(template_id)
    name = _copy_name(original.name)
    copy = MessageTemplate(name=name, body=original.body)
    db.session.add(copy)
    db.session.flush()
    record("template.duplicate", "template", copy.id, details={"name": copy.name, "from_template": original.id})
    db.session.commit()
    flash(f"Made {name}; edit it as you like.", "info")
    return redirect(url_for("message_templates.edit", template_id=copy.id))


def _copy_name(name: str) -> str:
    taken = set(db.session.scalars(select(MessageTemplate.name).where(MessageTemplate.name.startswith(name))))
    n = 1
    while (candidate := f"{name} (copy{'' if n == 1 else f' {n}'})"[:NAME_MAX_LENGTH]) in taken:
        n += 1
    return candidate


@bp.post("/templates/<int:template_id>/archive")
@requires("send")
def archive(template_id: int) -> Response:
    template = _template_or_404(template_id)
    template.archived_at = None if template.archived_at else utcnow()
    action = "template.archive" if template.archived_at else "template.restore"
    record(action, "template", template.id, details={"name": template.name})
    db.session.commit()
    flash(f"{'Archived' if template.archived_at else 'Restored'} the template {template.name}.", "info")
    return redirect(url_for("message_templates.index"))
