"""full-text index of the stored papers, for searches and previews; existing papers are indexed

Revision ID: 0003_paper_search
Revises: 0002_claimed_content
Create Date: 2026-11-30 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from bot.db.search_index import reindex

revision: str = "0003_paper_search"
down_revision: str | None = "0002_claimed_content"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The FTS5 table reads its text from paper_search (external content) and is kept in step by
# these triggers, the pattern SQLite's FTS5 documentation gives for external content tables.
_SQLITE = [
    """CREATE TABLE paper_search (
        doc_id INTEGER PRIMARY KEY,
        arxiv_id VARCHAR(64) NOT NULL
            CONSTRAINT uq_paper_search_arxiv_id UNIQUE
            CONSTRAINT fk_paper_search_arxiv_id_papers REFERENCES papers (arxiv_id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        abstract TEXT NOT NULL,
        authors TEXT NOT NULL,
        categories TEXT NOT NULL
    )""",
    """CREATE VIRTUAL TABLE papers_fts USING fts5(
        title, abstract, authors, categories, content='paper_search', content_rowid='doc_id',
        tokenize='unicode61 remove_diacritics 0'
    )""",
    """CREATE TRIGGER paper_search_after_insert AFTER INSERT ON paper_search BEGIN
        INSERT INTO papers_fts (rowid, title, abstract, authors, categories)
        VALUES (new.doc_id, new.title, new.abstract, new.authors, new.categories);
    END""",
    """CREATE TRIGGER paper_search_after_delete AFTER DELETE ON paper_search BEGIN
        INSERT INTO papers_fts (papers_fts, rowid, title, abstract, authors, categories)
        VALUES ('delete', old.doc_id, old.title, old.abstract, old.authors, old.categories);
    END""",
    """CREATE TRIGGER paper_search_after_update AFTER UPDATE ON paper_search BEGIN
        INSERT INTO papers_fts (papers_fts, rowid, title, abstract, authors, categories)
        VALUES ('delete', old.doc_id, old.title, old.abstract, old.authors, old.categories);
        INSERT INTO papers_fts (rowid, title, abstract, authors, categories)
        VALUES (new.doc_id, new.title, new.abstract, new.authors, new.categories);
    END""",
]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
    else:
        op.create_table(
            "paper_search",
            sa.Column("arxiv_id", sa.String(length=64), nullable=False),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(
                ["arxiv_id"],
                ["papers.arxiv_id"],
                name="fk_paper_search_arxiv_id_papers",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("arxiv_id", name="pk_paper_search"),
        )
        op.create_index("ix_paper_search_document", "paper_search", ["document"], postgresql_using="gin")
    reindex(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS paper_search_after_{suffix}")
        op.execute("DROP TABLE IF EXISTS papers_fts")
        op.execute("DROP TABLE IF EXISTS paper_search")
    else:
        op.drop_index("ix_paper_search_document", table_name="paper_search")
        op.drop_table("paper_search")
