"""deliveries: the RQ job that carries each queued delivery, so a lost job can be found

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("comms_deliveries") as batch:
        batch.add_column(sa.Column("enqueued_job_id", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("comms_deliveries") as batch:
        batch.drop_column("enqueued_job_id")
