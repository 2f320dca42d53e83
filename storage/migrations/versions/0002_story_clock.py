"""Story clock: one row whose version every clustering run bumps, so a process can
tell whether the story clusterer it kept from its last poll is still current.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create story_clock with its one row."""
    clock = op.create_table('story_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_story_clock'))
    )
    op.bulk_insert(clock, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    """Drop story_clock."""
    op.drop_table('story_clock')
