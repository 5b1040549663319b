"""NERVENBAHN_ACCESS_LOG_RETENTION_DAYS: one year by default, longer on request, never shorter."""

from __future__ import annotations

import pytest

from nervenbahn.api.settings import load_api_settings
from nervenbahn.audit.access_log import check_retention
from nervenbahn.audit.errors import AccessLogRetentionError
from nervenbahn.config import ConfigError

STORE = {"NERVENBAHN_STORE": "sqlite:///data/store.db"}


@pytest.mark.parametrize(("value", "days"), [(None, 365), ("", 365), ("365", 365),
                                             (" 3650 ", 3650)])
def test_retention_is_a_year_unless_set_longer(value: str | None, days: int) -> None:
    env = STORE | ({} if value is None else {"NERVENBAHN_ACCESS_LOG_RETENTION_DAYS": value})

    assert load_api_settings(environ=env).access_log_retention_days == days


@pytest.mark.parametrize(("value", "reason"), [
    ("364", "364 days is shorter than one year; Art. 4 para. 5 DSV / OPDo requires access "
            "logs to be kept at least 365 days"),
    ("0", "0 days is shorter than one year"),
    ("-400", "-400 days is shorter than one year"),
    ("1y", "'1y' is not a whole number of days"),
    ("365.5", "'365.5' is not a whole number of days"),
])
def test_a_retention_under_a_year_or_malformed_is_refused_naming_the_setting(
    value: str, reason: str
) -> None:
    env = STORE | {"NERVENBAHN_ACCESS_LOG_RETENTION_DAYS": value}

    with pytest.raises(ConfigError) as raised:
        load_api_settings(environ=env)

    assert str(raised.value).startswith(f"NERVENBAHN_ACCESS_LOG_RETENTION_DAYS: {reason}")


def test_the_port_refuses_a_short_retention_whoever_asks() -> None:
    with pytest.raises(AccessLogRetentionError, match="purge: 100 days"):
        check_retention(100, "purge")
    assert check_retention(366) == 366
