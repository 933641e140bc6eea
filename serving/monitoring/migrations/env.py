"""Alembic's environment for the prediction log: the caller hands over an open connection
(``serving.monitoring.predictions.migrate``), so no URL or ini file is read here."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
