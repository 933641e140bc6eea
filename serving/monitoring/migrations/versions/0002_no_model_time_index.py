"""Drop the (model, created_at) index: nothing reads the log by model and time (drift is kept in
memory, live metrics start from the feedback), and each index is one more B-tree every row adds to.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("predictions_model_time", table_name="predictions")


def downgrade() -> None:
    op.create_index("predictions_model_time", "predictions", ["model", "created_at"])
