"""SQLStore's engine and messages (the store itself: tests/functional/store/test_contract.py)."""

from __future__ import annotations

import pytest

from daemon import exception
from daemon.store import SQLStore
from daemon.store.sql import CONNECT_TIMEOUT, create_engine, redact


def test_server_urls_get_a_connect_timeout_unless_they_have_one():
    for url in ("postgresql+psycopg2://u:secret@127.0.0.1:1/x",
                "mysql+pymysql://u:secret@127.0.0.1:1/x?charset=utf8mb4"):
        engine = create_engine(url, max_retries=0)
        assert engine.url.query["connect_timeout"] == str(CONNECT_TIMEOUT)
        assert engine.url.password == "secret"
        engine.dispose()
    engine = create_engine("postgresql+psycopg2://u:p@127.0.0.1:1/x?connect_timeout=3",
                           max_retries=0)
    assert engine.url.query["connect_timeout"] == "3"
    engine.dispose()


def test_unreachable_server_is_a_store_error_without_the_password():
    store = SQLStore("postgresql+psycopg2://u:topsecret@127.0.0.1:1/x", max_events=5,
                     engine_options={"max_retries": 1, "retry_interval": 0})
    with pytest.raises(exception.StoreError) as caught:
        store.open()
    message = str(caught.value)
    assert message.startswith("store: postgresql+psycopg2://u:***@127.0.0.1:1/x")
    assert "topsecret" not in message and "\n" not in message


def test_a_url_that_does_not_parse_is_not_echoed():
    with pytest.raises(exception.StoreError) as caught:
        create_engine("postgres ql://u:topsecret@host/x")
    assert "topsecret" not in str(caught.value)
    assert redact("not a url ://u:topsecret@") == "<invalid database URL>"
