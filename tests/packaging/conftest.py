"""Fixtures of the packaging tests (the PostGIS schema comes from tests/qgis)."""

from tests.qgis.conftest import pg_schema

__all__ = ["pg_schema"]
