"""papers read newest first with their id and upvotes from one index, for searches

Revision ID: 0005_search_order
Revises: 0004_feedback
Create Date: 2026-11-30 23:30:00

A broad search reads the stored papers newest first and checks each against its filter
(bot/db/candidates.py); with the id and upvotes in the index, that reading never visits the
papers' rows.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_search_order"
down_revision: str | None = "0004_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_papers_seen_order", "papers", ["first_seen_at", "arxiv_id", "upvotes"])


def downgrade() -> None:
    op.drop_index("ix_papers_seen_order", table_name="papers")
