"""Integration tests of the case service on its real stores (SQLite file, PostgreSQL schema)."""

import pytest

pytest.register_assert_rewrite(f"{__name__}.contract")
