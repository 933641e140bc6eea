"""The prediction log: predictions and the feedback on them.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("prediction_id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("predicted", sa.JSON, nullable=True),
        sa.Column("ood_score", sa.Float, nullable=True),
        sa.Column("ood_flagged", sa.Boolean, nullable=True),
    )
    # Retention deletes the oldest rows. (Reads by model and time never came: 0002 drops that index.)
    op.create_index("predictions_model_time", "predictions", ["model", "created_at"])
    op.create_index("predictions_time", "predictions", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prediction_id", sa.String(32), sa.ForeignKey("predictions.prediction_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("truth", sa.JSON, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
    )
    op.create_index("feedback_prediction", "feedback", ["prediction_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("predictions")
