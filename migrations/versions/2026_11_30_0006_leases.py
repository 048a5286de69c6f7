"""claims across processes: a heartbeat per process, and who holds each claim

Revision ID: 0006_leases
Revises: 0005_search_order
Create Date: 2026-11-30 23:50:00

Several processes on one PostgreSQL database each record a heartbeat in `processes`; a
claimed delivery names its process (`deliveries.claimed_by`), and a target being delivered
is held by one process until `targets.lease_until`, which its heartbeat renews. A process
whose heartbeat stopped leaves claims that another process checks against the target's
history and finishes (docs/delivery.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_leases"
down_revision: str | None = "0005_search_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processes")),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=80), nullable=True))
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of `targets` would cascade-delete
    # every delivery and watch through their ON DELETE CASCADE foreign keys.
    op.drop_column("targets", "lease_until")
    op.drop_column("targets", "claimed_by")
    op.drop_column("deliveries", "claimed_by")
    op.drop_table("processes")
