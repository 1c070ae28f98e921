"""personalised messages: contact fields, saved templates, the body each delivery is sent

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "contact_fields",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_contact_fields_contact_id_contacts", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("contact_id", "name", name="pk_contact_fields"),
    )
    op.create_index("ix_contact_fields_name", "contact_fields", ["name"])
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_templates"),
        sa.UniqueConstraint("name", name="uq_message_templates_name"),
    )
    with op.batch_alter_table("comms_messages") as batch_op:
        batch_op.add_column(sa.Column("template_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_comms_messages_template_id_message_templates",
            "message_templates",
            ["template_id"],
            ["id"],
            ondelete="SET NULL",
        )
    # Deliveries composed before this revision were all sent their message's one body.
    op.add_column("comms_deliveries", sa.Column("body", sa.Text(), nullable=True))
    op.execute(
        "UPDATE comms_deliveries SET body = "
        "(SELECT comms_messages.body FROM comms_messages WHERE comms_messages.id = comms_deliveries.message_id)"
    )
    with op.batch_alter_table("comms_deliveries") as batch_op:
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=False)


def downgrade():
    with op.batch_alter_table("comms_deliveries") as batch_op:
        batch_op.drop_column("body")
    with op.batch_alter_table("comms_messages") as batch_op:
        batch_op.drop_constraint("fk_comms_messages_template_id_message_templates", type_="foreignkey")
        batch_op.drop_column("template_id")
    op.drop_table("message_templates")
    op.drop_index("ix_contact_fields_name", table_name="contact_fields")
    op.drop_table("contact_fields")
