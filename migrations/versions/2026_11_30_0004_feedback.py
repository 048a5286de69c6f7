"""feedback (👍/👎) and saved papers per user; recommendation settings; the why line of a delivery

Revision ID: 0004_feedback
Revises: 0003_paper_search
Create Date: 2026-11-30 12:00:00

Only new tables and added columns: `papers` is never rebuilt (its full-text index points at it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_feedback"
down_revision: str | None = "0003_paper_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("paper_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.arxiv_id"], name="fk_feedback_paper_id_papers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("user_id", "paper_id", name="uq_feedback_user_paper"),
    )
    op.create_table(
        "saved_papers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("paper_id", sa.String(length=64), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.arxiv_id"], name="fk_saved_papers_paper_id_papers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_saved_papers"),
        sa.UniqueConstraint("user_id", "paper_id", name="uq_saved_papers_user_paper"),
    )
    op.create_index("ix_saved_papers_user_saved_at", "saved_papers", ["user_id", "saved_at"], unique=False)
    # Plain ALTER TABLE ADD COLUMN on SQLite too. The defaults are literal text on purpose: an SQL
    # expression default (sa.false()) makes batch mode rebuild `targets`, and dropping the old
    # table would cascade-delete every delivery and watch that points at it.
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("recommend", sa.Boolean(), server_default="0", nullable=False))
        batch.add_column(sa.Column("recommend_per_day", sa.Integer(), server_default="5", nullable=False))
        batch.add_column(sa.Column("last_recommended_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE DROP COLUMN (SQLite 3.35+), not a batch rebuild: rebuilding `targets` would
    # cascade-delete the deliveries and watches that point at it.
    op.drop_column("deliveries", "reason")
    for column in ("last_recommended_at", "recommend_per_day", "recommend"):
        op.drop_column("targets", column)
    op.drop_index("ix_saved_papers_user_saved_at", table_name="saved_papers")
    op.drop_table("saved_papers")
    op.drop_table("feedback")
