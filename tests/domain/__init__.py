"""Unit tests of the domain: the case process on in-memory persistence, with fakes."""

import pytest

pytest.register_assert_rewrite(f"{__name__}.case_desk")
