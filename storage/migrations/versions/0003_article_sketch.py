"""Article sketch: the story clustering signature of an article's title and summary,
computed where the article is parsed, so that clustering (and every reload of its
window) reads it instead of fingerprinting the text again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add articles.sketch (NULL for articles stored before: clustering reads their text)."""
    op.add_column('articles', sa.Column('sketch', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    """Drop articles.sketch."""
    with op.batch_alter_table('articles') as batch_op:
        batch_op.drop_column('sketch')
