"""The contact, group, member and import forms: each validates what it can without a page."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from sqlalchemy import select
from wtforms import SelectMultipleField, StringField, TextAreaField, ValidationError, widgets
from wtforms.validators import DataRequired, Length

from smsdash.contacts.csv_import import RESERVED_FIELDS
from smsdash.extensions import db
from smsdash.models import NAME_MAX_LENGTH, Contact, Group
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.sms.placeholders import field_key, is_field_name


def parse_fields(text: str) -> tuple[dict[str, str], list[str]]:
    """`name: value` lines as fields (names made lower_snake_case), and each bad line's problem."""
    fields: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, colon, value = line.partition(":")
        key = field_key(label)
        if not colon or not key:
            problems.append(f"Line {number}: write each field as “name: value”.")
        elif key in RESERVED_FIELDS:
            problems.append(f"Line {number}: “{key}” is the contact's own {key}; use the field above.")
        elif not is_field_name(key):
            problems.append(f"Line {number}: a field name starts with a letter.")
        elif value.strip():
            fields[key] = value.strip()
    return fields, problems


MAX_IMPORT_BYTES = 2 * 1024 * 1024


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class ContactForm(FlaskForm):
    name = StringField(
        "Name", filters=[_strip], validators=[DataRequired("Enter a name."), Length(max=NAME_MAX_LENGTH)]
    )
    phone = StringField("Phone", filters=[_strip], validators=[DataRequired("Enter a phone number.")])
    fields = TextAreaField("Fields")
    groups = SelectMultipleField(
        "Groups", coerce=int, option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False)
    )

    def __init__(self, *args: object, contact_id: int | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.contact_id = contact_id
        self.e164 = ""
        self.field_values: dict[str, str] = {}
        self.groups.choices = [(g.id, g.name) for g in db.session.scalars(select(Group).order_by(Group.name))]

    def validate_fields(self, field: TextAreaField) -> None:
        self.field_values, problems = parse_fields(field.data or "")
        if problems:
            raise ValidationError(" ".join(problems))

    def validate_phone(self, field: StringField) -> None:
        try:
            self.e164 = normalize(field.data or "", current_app.config["DEFAULT_PHONE_REGION"])
        except InvalidNumber as exc:
            raise ValidationError(
                f"{field.data} is {exc.reason}." if exc.reason != "empty" else "Enter a phone number."
            ) from exc
        other = db.session.scalar(
            select(Contact).where(Contact.phone == self.e164, Contact.id != (self.contact_id or 0))
        )
        if other is not None:
            raise ValidationError(f"{self.e164} already belongs to {other.name}.")


class GroupForm(FlaskForm):
    name = StringField(
        "Group name", filters=[_strip], validators=[DataRequired("Enter a group name."), Length(max=NAME_MAX_LENGTH)]
    )

    def __init__(self, *args: object, group_id: int | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.group_id = group_id

    def validate_name(self, field: StringField) -> None:
        clash = db.session.scalar(select(Group.id).where(Group.name == field.data, Group.id != (self.group_id or 0)))
        if clash is not None:
            raise ValidationError(f"A group named {field.data!r} already exists.")


class MemberForm(FlaskForm):
    phone = StringField(
        "Add a contact by phone number",
        filters=[_strip],
        validators=[DataRequired("Enter the phone number of a contact.")],
    )


class ImportForm(FlaskForm):
    file = FileField(
        "CSV file (columns: name, phone)",
        validators=[
            FileRequired("Choose a CSV file."),
            FileAllowed(["csv", "txt"], "Upload a .csv file."),
            FileSize(MAX_IMPORT_BYTES, message="The file is larger than 2 MB; split it."),
        ],
    )
