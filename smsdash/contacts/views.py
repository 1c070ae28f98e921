"""Contacts and groups: list, search, add, edit, delete, group membership and CSV import.

Every phone number is stored as E.164 (so a contact typed as "(415) 555-0101" and one imported
as "+14155550101" are the same person), and each contact shows whether it has opted out. Every
change is audited in the commit that makes it.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, make_response, redirect, render_template, request, url_for
from sqlalchemy import delete, func, select
from werkzeug.wrappers import Response

from smsdash.audit.record import record
from smsdash.auth.permissions import requires
from smsdash.contacts.csv_import import ImportReport, import_contacts, set_fields
from smsdash.contacts.forms import ContactForm, GroupForm, ImportForm, MemberForm
from smsdash.contacts.search import search_contacts
from smsdash.delivery.optouts import opted_out_among
from smsdash.extensions import db
from smsdash.models import Contact, ContactField, Group, group_members
from smsdash.sms.phones import InvalidNumber, normalize
from smsdash.twilio.messages_api import sender_identity
from smsdash.web.form_errors import add_error
from smsdash.web.pagination import paginate

bp = Blueprint("contacts", __name__)

PER_PAGE = 50


def _contact_or_404(contact_id: int) -> Contact:
    return db.session.get(Contact, contact_id) or abort(404)


def _group_or_404(group_id: int) -> Group:
    return db.session.get(Group, group_id) or abort(404)


@bp.get("/contacts")
@requires("view")
def index() -> Response:
    q = request.args.get("q", "")
    page = paginate(search_contacts(q), PER_PAGE)
    opted_out = opted_out_among([c.phone for c in page.items], sender_identity(current_app.config))
    # Only the search box and pager ask for the rows; htmx's history restore wants the whole page.
    fragment = request.headers.get("HX-Request") and request.headers.get("HX-Target") == "contact-rows"
    template = "contacts/_rows.html" if fragment else "contacts/index.html"
    response = make_response(render_template(template, page=page, q=q, opted_out=opted_out))
    response.headers.add("Vary", "HX-Request")  # one URL serves the page and the search fragment
    return response


@bp.route("/contacts/new", methods=["GET", "POST"])
@requires("send")
def new() -> tuple[str, int] | Response:
    form = ContactForm()
    if form.validate_on_submit():
        contact = Contact(name=form.name.data, phone=form.e164)
        contact.groups = _groups(form.groups.data)
        set_fields(contact, form.field_values)
        db.session.add(contact)
        db.session.flush()
        record("contact.create", "contact", contact.id, details={"name": contact.name, "phone": contact.phone})
        db.session.commit()
        flash(f"Added {contact.name} ({contact.phone}).", "info")
        return redirect(url_for("contacts.index"))
    return _form_page(form, "Add a contact")


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@requires("send")
def edit(contact_id: int) -> tuple[str, int] | Response:
    contact = _contact_or_404(contact_id)
    form = ContactForm(obj=contact, contact_id=contact.id)
    if request.method == "GET":
        form.groups.data = [g.id for g in contact.groups]
        form.fields.data = "\n".join(f"{f.name}: {f.value}" for f in contact.fields)
    if form.validate_on_submit():
        before = _described(contact)
        contact.name, contact.phone = form.name.data or "", form.e164
        contact.groups = _groups(form.groups.data)
        set_fields(contact, form.field_values, replace=True)
        after = _described(contact)
        changed = sorted(k for k in after if after[k] != before[k])
        record("contact.edit", "contact", contact.id, details={"name": contact.name, "changed": changed})
        db.session.commit()
        flash(f"Saved {contact.name}.", "info")
        return redirect(url_for("contacts.index"))
    return _form_page(form, f"Edit {contact.name}", contact=contact)


def _form_page(form: ContactForm, title: str, contact: Contact | None = None) -> tuple[str, int]:
    status = 422 if form.errors else 200
    return render_template("contacts/form.html", form=form, title=title, contact=contact), status


def _described(contact: Contact) -> dict[str, object]:
    """What an edit can change, to name in its audit entry which parts it did change."""
    return {
        "name": contact.name,
        "phone": contact.phone,
        "groups": sorted(g.id for g in contact.groups),
        "fields": sorted((f.name, f.value) for f in contact.fields),
    }


def _groups(ids: list[int] | None) -> list[Group]:
    return list(db.session.scalars(select(Group).where(Group.id.in_(ids or []))))


@bp.post("/contacts/<int:contact_id>/delete")
@requires("send")
def delete_contact(contact_id: int) -> Response:
    contact = _contact_or_404(contact_id)
    record("contact.delete", "contact", contact.id, details={"name": contact.name, "phone": contact.phone})
    db.session.delete(contact)
    db.session.commit()
    flash(f"Deleted {contact.name}.", "info")
    return redirect(url_for("contacts.index"))


@bp.get("/contacts/fields")
@requires("view")
def fields() -> str:
    """Which fields contacts have (for placeholders) and how many contacts have each."""
    counts = db.session.execute(
        select(ContactField.name, func.count()).group_by(ContactField.name).order_by(ContactField.name)
    ).all()
    total = db.session.scalar(select(func.count()).select_from(Contact)) or 0
    return render_template("contacts/fields.html", counts=counts, total=total)


@bp.route("/contacts/import", methods=["GET", "POST"])
@requires("send")
def import_csv() -> tuple[str, int]:
    form = ImportForm()
    report: ImportReport | None = None
    if form.validate_on_submit():
        raw = form.file.data.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            form.file.errors.append("The file is not UTF-8 text; save it as CSV UTF-8 and try again.")
        else:
            report = import_contacts(text, current_app.config["DEFAULT_PHONE_REGION"])
            counts = {
                "created": report.added,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "skipped": len(report.errors),
            }
            record("contact.import", details={"file": form.file.data.filename, **counts})
            db.session.commit()
    status = 422 if form.errors or (report and report.errors) else 200
    return render_template("contacts/import.html", form=form, report=report), status


@bp.route("/groups", methods=["GET", "POST"])
@requires("send", read="view")
def groups() -> tuple[str, int] | Response:
    form = GroupForm()
    if form.validate_on_submit():
        created = Group(name=form.name.data)
        db.session.add(created)
        db.session.flush()
        record("group.create", "group", created.id, details={"name": created.name})
        db.session.commit()
        flash(f"Created group {form.name.data}.", "info")
        return redirect(url_for("contacts.groups"))
    counts: dict[int, int] = dict(
        db.session.execute(select(group_members.c.group_id, func.count()).group_by(group_members.c.group_id)).all()
    )
    rows = db.session.scalars(select(Group).order_by(func.lower(Group.name))).all()
    return render_template("contacts/groups.html", form=form, groups=rows, counts=counts), 422 if form.errors else 200


@bp.route("/groups/<int:group_id>", methods=["GET", "POST"])
@requires("send", read="view")
def group(group_id: int) -> tuple[str, int] | Response:
    grp = _group_or_404(group_id)
    rename = GroupForm(obj=grp, group_id=grp.id, prefix="rename")
    member = MemberForm(prefix="member")
    if "rename-name" in request.form and rename.validate_on_submit():
        was, grp.name = grp.name, rename.name.data or grp.name
        record("group.edit", "group", grp.id, details={"name": grp.name, "was": was})
        db.session.commit()
        flash(f"Renamed the group to {grp.name}.", "info")
        return redirect(url_for("contacts.group", group_id=grp.id))
    if member.phone.name in request.form and member.validate_on_submit():
        added = _add_member(grp, member)
        if added:
            return redirect(url_for("contacts.group", group_id=grp.id))
    members = sorted(grp.contacts, key=lambda c: c.name.lower())
    opted_out = opted_out_among([c.phone for c in members], sender_identity(current_app.config))
    status = 422 if rename.errors or member.errors else 200
    return render_template(
        "contacts/group.html", group=grp, rename=rename, member=member, members=members, opted_out=opted_out
    ), status


def _add_member(grp: Group, form: MemberForm) -> bool:
    try:
        phone = normalize(form.phone.data or "", current_app.config["DEFAULT_PHONE_REGION"])
    except InvalidNumber as exc:
        add_error(form.phone, f"{form.phone.data} is {exc.reason}.")
        return False
    contact = db.session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is None:
        add_error(form.phone, f"No contact has the number {phone}; add the contact first.")
        return False
    if contact not in grp.contacts:
        grp.contacts.append(contact)
        record("group.edit", "group", grp.id, details={"name": grp.name, "added": contact.phone})
        db.session.commit()
    flash(f"{contact.name} is in {grp.name}.", "info")
    return True


@bp.post("/groups/<int:group_id>/members/<int:contact_id>/remove")
@requires("send")
def remove_member(group_id: int, contact_id: int) -> Response:
    grp = _group_or_404(group_id)
    removed = db.session.execute(
        delete(group_members)
        .where(group_members.c.group_id == grp.id, group_members.c.contact_id == contact_id)
        .returning(group_members.c.contact_id)
    ).all()
    if removed:
        phone = db.session.scalar(select(Contact.phone).where(Contact.id == contact_id))
        record("group.edit", "group", grp.id, details={"name": grp.name, "removed": phone})
    db.session.commit()
    return redirect(url_for("contacts.group", group_id=grp.id))


@bp.post("/groups/<int:group_id>/delete")
@requires("send")
def delete_group(group_id: int) -> Response:
    grp = _group_or_404(group_id)
    record("group.delete", "group", grp.id, details={"name": grp.name})
    db.session.delete(grp)
    db.session.commit()
    flash(f"Deleted group {grp.name} (its contacts are kept).", "info")
    return redirect(url_for("contacts.groups"))
