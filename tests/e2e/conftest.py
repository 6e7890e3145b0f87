"""Fixtures for tests against a live server and real workers."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from tests.e2e.stack import LiveStack, live_stack


@pytest.fixture
def stack(
    app: Flask, database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[LiveStack]:
    # ``app`` clears the tables first; the live processes share the database.
    with live_stack(database_url, redis_url, tmp_path) as running:
        yield running
