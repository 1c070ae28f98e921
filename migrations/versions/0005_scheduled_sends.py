"""scheduled sends: a message's chosen time and zone, validity window, quiet-hours override; each delivery's release time

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("comms_messages") as batch_op:
        batch_op.add_column(sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("send_zone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("validity_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ignore_quiet_hours", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
    op.add_column("comms_deliveries", sa.Column("send_after", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_comms_deliveries_status_send_after", "comms_deliveries", ["status", "send_after"])


def downgrade():
    op.drop_index("ix_comms_deliveries_status_send_after", table_name="comms_deliveries")
    with op.batch_alter_table("comms_deliveries") as batch_op:
        batch_op.drop_column("send_after")
    with op.batch_alter_table("comms_messages") as batch_op:
        batch_op.drop_column("ignore_quiet_hours")
        batch_op.drop_column("validity_seconds")
        batch_op.drop_column("send_zone")
        batch_op.drop_column("send_at")
