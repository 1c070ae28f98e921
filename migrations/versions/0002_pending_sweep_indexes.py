"""pending inbox: indexes for the worker's sweep and the retention delete

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WAITING = sa.text("applied_at IS NULL")


def upgrade():
    op.create_index(
        "ix_twilio_pending_callbacks_waiting_sid",
        "twilio_pending_callbacks",
        ["message_sid"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )
    op.create_index(
        "ix_twilio_pending_callbacks_waiting_received",
        "twilio_pending_callbacks",
        ["received_at"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )
    op.create_index("ix_twilio_pending_callbacks_applied_at", "twilio_pending_callbacks", ["applied_at"])


def downgrade():
    op.drop_index("ix_twilio_pending_callbacks_applied_at", table_name="twilio_pending_callbacks")
    op.drop_index("ix_twilio_pending_callbacks_waiting_received", table_name="twilio_pending_callbacks")
    op.drop_index("ix_twilio_pending_callbacks_waiting_sid", table_name="twilio_pending_callbacks")
