"""Alembic environment of the ledger.

dockroll runs migrations itself (:func:`dockroll.ledger.migrate`) and hands
over an open connection, already inside the transaction that holds the
migration lock, through ``config.attributes["connection"]``. A developer
writing a new revision can instead set ``sqlalchemy.url`` on the Config.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from dockroll.ledger._models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode recreates tables instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "the ledger migrations need a connection: use dockroll.ledger.migrate(), "
            "or set sqlalchemy.url on the alembic Config"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()
