"""inbound messages: every reply kept once per MessageSid, for the inbox and conversations

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("from_number", sa.String(length=64), nullable=False),
        sa.Column("to_number", sa.String(length=64), nullable=False),
        sa.Column("messaging_service_sid", sa.String(length=64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("num_media", sa.Integer(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("opt_out", sa.String(length=8), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_inbound_messages_contact_id_contacts", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["comms_deliveries.id"],
            name="fk_inbound_messages_delivery_id_comms_deliveries",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["comms_messages.id"],
            name="fk_inbound_messages_message_id_comms_messages",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("message_sid", name="uq_inbound_messages_message_sid"),
    )
    op.create_index("ix_inbound_messages_from_id", "inbound_messages", ["from_number", "id"])
    op.create_index(
        "ix_inbound_messages_unread",
        "inbound_messages",
        ["from_number"],
        postgresql_where=sa.text("read_at IS NULL"),
        sqlite_where=sa.text("read_at IS NULL"),
    )
    op.create_index("ix_inbound_messages_delivery_id", "inbound_messages", ["delivery_id"])
    op.create_index("ix_inbound_messages_message_id", "inbound_messages", ["message_id"])
    op.create_index("ix_comms_deliveries_to_number_id", "comms_deliveries", ["to_number", "id"])


def downgrade():
    op.drop_index("ix_comms_deliveries_to_number_id", table_name="comms_deliveries")
    op.drop_index("ix_inbound_messages_message_id", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_delivery_id", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_unread", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_from_id", table_name="inbound_messages")
    op.drop_table("inbound_messages")
