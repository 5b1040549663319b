"""kafka-python checksums record batches in C (`bus.checksums`): the crc32c extension is
installed with nervenbahn, computes what kafka-python's own pure-Python CRC computes, and a
process without it says so in its log."""

from __future__ import annotations

import random

import pytest
from kafka.record import util
from kafka.record._crc32c import crc as crc_in_python
from structlog.testing import capture_logs

from bus import checksums


def test_kafka_python_checksums_record_batches_in_c() -> None:
    # Without the crc32c extension (kafka-python[crc32c]) every message costs about 75 µs of
    # pure-Python CRC in the relay and again in each consumer.
    assert checksums.checksums_in_c()
    assert util.calc_crc32c.__defaults__[0] is not crc_in_python


def test_the_c_checksum_is_kafka_pythons_checksum() -> None:
    # The check value of CRC-32C (Castagnoli) over "123456789", and random batches of the
    # sizes the relay sends: a wrong checksum would make every broker refuse every batch.
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283
    rng = random.Random(17)
    for size in (0, 1, 565, 4096, 250_000):
        data = memoryview(rng.randbytes(size))
        assert util.calc_crc32c(data) == crc_in_python(data)


def test_a_process_checksumming_in_python_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(util.calc_crc32c, "__defaults__", (crc_in_python,))
    checksums._warn_once.cache_clear()
    try:
        with capture_logs() as logs:
            checksums.warn_if_checksums_in_python()
            checksums.warn_if_checksums_in_python()
        assert not checksums.checksums_in_c()
        warnings = [entry for entry in logs if entry["log_level"] == "warning"]
        assert len(warnings) == 1
        assert "crc32c" in warnings[0]["event"]
    finally:
        checksums._warn_once.cache_clear()


def test_a_process_checksumming_in_c_says_nothing() -> None:
    checksums._warn_once.cache_clear()
    with capture_logs() as logs:
        checksums.warn_if_checksums_in_python()
    assert logs == []


def test_an_earlier_shape_of_kafka_python_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Earlier releases called a module-level `_crc32c` (no default argument).
    monkeypatch.setattr(util.calc_crc32c, "__defaults__", None)
    monkeypatch.setattr(util, "_crc32c", crc_in_python, raising=False)
    assert not checksums.checksums_in_c()
    monkeypatch.setattr(util, "_crc32c", util.crc32c_c, raising=False)
    assert checksums.checksums_in_c()


def test_a_release_that_renamed_its_parts_falls_back_to_the_extension_being_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(util, "crc32c_py")
    assert checksums.checksums_in_c()  # the extension is installed here
    monkeypatch.setattr(checksums.importlib.util, "find_spec", lambda name: None)
    assert not checksums.checksums_in_c()


def test_the_warning_never_keeps_a_client_from_being_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise AttributeError("module 'kafka.record.util' has no attribute 'calc_crc32c'")

    monkeypatch.setattr(checksums, "checksums_in_c", broken)
    checksums._warn_once.cache_clear()
    with capture_logs() as logs:
        checksums.warn_if_checksums_in_python()  # no exception
    assert logs == []


def test_every_kafka_client_of_ours_is_made_after_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Producers and consumers (relay, consumers, dead letters, topic readers, checkpoints,
    # the admin client) all take their arguments from KafkaSettings: the check lives there.
    from bus.kafka_settings import KafkaSettings

    monkeypatch.setattr(util.calc_crc32c, "__defaults__", (crc_in_python,))
    settings = KafkaSettings(bootstrap_servers=("127.0.0.1:9092",))
    for make in (lambda: settings.producer_kwargs(), lambda: settings.consumer_kwargs("g")):
        checksums._warn_once.cache_clear()
        with capture_logs() as logs:
            make()
        assert [entry["log_level"] for entry in logs] == ["warning"]
    checksums._warn_once.cache_clear()
