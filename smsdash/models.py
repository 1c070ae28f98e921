"""The data model: operators, contacts and groups, messages, deliveries and their events.

The database is the source of truth for every delivery; Redis only carries work. Column and
table names follow DESIGN.md's contracts (`comms_messages`, `comms_deliveries`, `comms_events`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from smsdash.extensions import db


def utcnow() -> datetime:
    """Timezone-aware UTC now; every timestamp column stores UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware UTC, on SQLite as well as Postgres."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class User(UserMixin, db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """An operator who can log in to the dashboard, with a role (auth/roles.py).

    Operators are deactivated, never deleted, so the audit log and every message keep naming
    who did what. `session_version` is part of the id a session cookie carries (`get_id`): the
    user loader refuses a cookie whose version is not the current one, so bumping it (password
    change, deactivation) ends every session at once, on every web process, with no session store.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer", server_default="viewer")
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses to log in an inactive user
        return self.deactivated_at is None

    @property
    def is_authenticated(self) -> bool:
        # Any User object is a logged-in operator: the user loader has already refused an inactive
        # one. UserMixin's version reads is_active, a column load on every check.
        return True

    def get_id(self) -> str:
        return f"{self.id}.{self.session_version}"

    def end_sessions(self) -> None:
        """Make every session cookie issued so far invalid (the caller commits)."""
        self.session_version = (self.session_version or 1) + 1


class PasswordLink(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A one-time link an admin hands to an operator to set their password (no mail server needed).

    Only the token's SHA-256 is stored: whoever reads the database cannot use a link. `used_at`
    is set by a conditional UPDATE, so a link works once even when two requests race."""

    __tablename__ = "password_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class AuditEntry(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One thing someone did, appended by audit/record.py and never changed.

    `actor_label` is the operator's email at the time (or `cli:<os user>`, or the address of an
    anonymous log-in attempt), so an entry still reads right after the operator is renamed or
    deactivated. `target_id` is a plain number, not a foreign key: deleting a contact must not
    touch the entry that records its deletion. Triggers in migration 0007 refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_actor_id", "actor_id", "occurred_at"),
        Index("ix_audit_log_action", "action", "occurred_at"),
        Index("ix_audit_log_target", "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(48))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# The longest contact or group name: the column's length, and the limit the contact and group
# forms and the CSV import check, so a name they accept always fits the column.
NAME_MAX_LENGTH = 200

group_members = Table(
    "group_members",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
)


class Contact(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A person operators can message; `phone` is E.164 and unique."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    groups: Mapped[list[Group]] = relationship(secondary=group_members, back_populates="contacts")
    fields: Mapped[list[ContactField]] = relationship(
        cascade="all, delete-orphan", order_by="ContactField.name", passive_deletes=True
    )

    def field_values(self) -> dict[str, str]:
        return {f.name: f.value for f in self.fields}


class ContactField(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One named value of a contact besides name and phone (`site`, `first_name`, ...), for placeholders.

    A row per value rather than a JSON column, so the field list counts contacts per field in SQL
    and compose loads only the fields of the contacts it sends to. `name` is lower_snake_case."""

    __tablename__ = "contact_fields"
    __table_args__ = (Index("ix_contact_fields_name", "name"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Group(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A named set of contacts, for sending to many people at once."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contacts: Mapped[list[Contact]] = relationship(secondary=group_members, back_populates="groups")


class OptOut(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A number that texted STOP (or made Twilio answer 21610) for a given sender.

    `sender` is the From number or Messaging Service SID the STOP applies to; an empty
    sender means every sender.
    """

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("phone", "sender", name="uq_opt_outs_phone_sender"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))
    sender: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageTemplate(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A saved body with placeholders. Archived templates are hidden from compose, never deleted,
    so a message that came from one still names it."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), unique=True)
    body: Mapped[str] = mapped_column(Text)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Message(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One composed SMS body as the operator wrote it (placeholders and all), sent to
    `recipient_count` deliveries; each delivery keeps the text its recipient really got.

    `template_id` is the saved template it came from: `body` is a copy of that template's body as
    it was then, so editing the template later changes no history."""

    __tablename__ = "comms_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id", ondelete="SET NULL"))
    # "Send later": the time the operator chose (None: sent at once) and the zone they chose it
    # in, so the page shows it back in their words. Each delivery's own time is `send_after`.
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    send_zone: Mapped[str | None] = mapped_column(String(64))
    # "Don't deliver after": Twilio's ValidityPeriod (1-36,000 s) for every delivery; None: Twilio's default.
    validity_seconds: Mapped[int | None] = mapped_column(Integer)
    # "Ignore quiet hours": an urgent text goes at once even where it is night (QUIET_HOURS).
    ignore_quiet_hours: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Approval of a large send (APPROVAL_THRESHOLD): None when none was needed, else "awaiting",
    # "approved", "rejected" or "expired" (a scheduled one whose time came first: not sent). While
    # awaiting, its deliveries wait as `scheduled`, which the release task leaves alone;
    # `reviewed_by_id`/`reviewed_at`/`review_reason` say who decided (compose/approval.py).
    approval: Mapped[str | None] = mapped_column(String(16))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_reason: Mapped[str | None] = mapped_column(Text)

    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])
    template: Mapped[MessageTemplate | None] = relationship()


class Delivery(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One recipient of one message: its Twilio SID, status and failure reason.

    `status` only ever moves forward (see `status.py`). `enqueued_at` is set once the send
    work reached Redis, so a sweeper can find deliveries committed while Redis was down, and
    `enqueued_job_id` names the RQ job that carries it, so the sweeper can also find the
    deliveries whose job Redis lost.
    """

    __tablename__ = "comms_deliveries"
    __table_args__ = (
        # The dashboard: a message's roll-up (counts per status, newest change) is an index-only
        # scan of (message_id, status, updated_at); its recipient table pages in (message_id, id) order.
        Index("ix_comms_deliveries_message_status", "message_id", "status", "updated_at"),
        Index("ix_comms_deliveries_message_id", "message_id", "id"),
        Index("ix_comms_deliveries_status_updated", "status", "updated_at"),
        # A conversation's thread and matching a reply to the latest delivery to its number.
        Index("ix_comms_deliveries_to_number_id", "to_number", "id"),
        # The release task's "scheduled and due" look-up.
        Index("ix_comms_deliveries_status_send_after", "status", "send_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("comms_messages.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    to_number: Mapped[str] = mapped_column(String(20))
    # The text this recipient is sent: the message's body with its placeholders filled in at
    # compose. The send job sends it and the duplicate-send look-up compares it.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default="queued")
    external_message_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A `scheduled` delivery is released (moved to `queued`) once this time has come.
    send_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued_job_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the reconciler may ask Twilio about this delivery again (None: not asked yet). It backs
    # off, so a message whose carrier never sends a receipt is not fetched on every run.
    reconcile_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    message: Mapped[Message] = relationship()
    contact: Mapped[Contact | None] = relationship()


class Event(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One step in a delivery's timeline, from the app, the job, Twilio or the reconciler.

    `dedupe_key` is set for observations that must be recorded once (a repeated Twilio
    callback); the unique index on (delivery_id, dedupe_key) makes a repeat a no-op.
    """

    __tablename__ = "comms_events"
    __table_args__ = (UniqueConstraint("delivery_id", "dedupe_key", name="uq_comms_events_delivery_dedupe"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("comms_deliveries.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(64))


class PendingCallback(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """A status callback that matched no delivery yet; applied when its SID appears."""

    __tablename__ = "twilio_pending_callbacks"
    __table_args__ = (
        # The worker's 30 s sweep and the retention delete read only the few entries still
        # waiting (applied_at NULL) or long applied: without these, each scanned the whole table.
        Index(
            "ix_twilio_pending_callbacks_waiting_sid",
            "message_sid",
            postgresql_where=text("applied_at IS NULL"),
            sqlite_where=text("applied_at IS NULL"),
        ),
        Index(
            "ix_twilio_pending_callbacks_waiting_received",
            "received_at",
            postgresql_where=text("applied_at IS NULL"),
            sqlite_where=text("applied_at IS NULL"),
        ),
        Index("ix_twilio_pending_callbacks_applied_at", "applied_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundMessage(db.Model):  # type: ignore[name-defined]  # db.Model is made at run time (python/mypy#8603)
    """One SMS/MMS a person sent us (a reply), kept once per Twilio MessageSid.

    `from_number` is kept as Twilio sent it, not normalised: a short code or an alphanumeric
    sender is not E.164 and is still someone's reply. `delivery_id` is the delivery it most
    likely answers (the latest one to that number), `contact_id` the contact with that number,
    both read at arrival so the inbox needs no guessing later. `read_at` is shared by the team
    (see inbox/threads.py). `opt_out` is "stop"/"start" when the text changed an opt-out: the
    thread shows those as notes."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        # A conversation is every text from one number: its thread pages and the inbox groups by it.
        Index("ix_inbound_messages_from_id", "from_number", "id"),
        # The unread badge on every page counts only the few unread rows.
        Index(
            "ix_inbound_messages_unread",
            "from_number",
            postgresql_where=text("read_at IS NULL"),
            sqlite_where=text("read_at IS NULL"),
        ),
        Index("ix_inbound_messages_delivery_id", "delivery_id"),
        Index("ix_inbound_messages_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64), default="")
    messaging_service_sid: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    # [{"url": ..., "content_type": ...}] in Twilio's order (MediaUrl0, MediaUrl1, ...).
    media: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    opt_out: Mapped[str | None] = mapped_column(String(8))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("comms_deliveries.id", ondelete="SET NULL"))
    # That delivery's message, copied so a message's roll-up counts its replies by one index.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("comms_messages.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact: Mapped[Contact | None] = relationship()
