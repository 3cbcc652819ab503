"""Alembic migrations of the ledger schema, run by :func:`dockroll.ledger.migrate`."""
