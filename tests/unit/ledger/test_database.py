"""Where the ledger lives and how failures read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dockroll.errors import LedgerError
from dockroll.ledger import LEDGER_URL_ENV, create_ledger_engine, ledger_url, open_ledger


def test_default_is_sqlite_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv(LEDGER_URL_ENV, raising=False)
    assert ledger_url() == f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"

    with open_ledger(actor="a") as ledger:
        ledger.audit("x")
    assert (tmp_path / "state" / "ledger.db").is_file()


def test_environment_then_argument_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEDGER_URL_ENV, "postgresql+psycopg://u:p@db/ledger")
    assert ledger_url() == "postgresql+psycopg://u:p@db/ledger"
    assert ledger_url("sqlite:///x.db") == "sqlite:///x.db"


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    engine = create_ledger_engine("postgresql://u:p@127.0.0.1/ledger")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
    finally:
        engine.dispose()


def test_a_malformed_url_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError, match="not a database URL"):
        create_ledger_engine("not a url")


def test_an_unreachable_database_names_the_url_without_the_password() -> None:
    with pytest.raises(LedgerError) as caught:
        open_ledger("postgresql+psycopg://dockroll:s3cret@127.0.0.1:9/ledger")
    message = str(caught.value)
    assert "127.0.0.1:9" in message
    assert "s3cret" not in message
    assert "dockroll dev up --with postgres" in message


def test_an_unwritable_sqlite_file_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((LedgerError, OSError)):
        open_ledger(f"sqlite:///{blocker / 'ledger.db'}")


def test_a_newer_schema_is_refused_with_a_hint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url, actor="a").close()
    with sqlite3.connect(tmp_path / "ledger.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(LedgerError, match="upgrade dockroll"):
        open_ledger(url, actor="a")
