"""Whether kafka-python checksums record batches in C.

Every record batch kafka-python sends carries a CRC-32C over its bytes, and a consumer
(`check_crcs`, on by default) recomputes it for every batch it fetches. Without the `crc32c`
C extension kafka-python falls back to its pure-Python CRC: measured 134 ms a MB here, about
75 µs for one case-events message (262 B of value and 303 B of headers), once when the relay
sends it and once in every consumer that reads it. The extension takes 0.04 ms a MB. It is a
dependency (`kafka-python[crc32c]`); `warn_if_checksums_in_python` says so in the log of a
process that lacks it (an installation that left it out), once, when the settings of its first
Kafka client are made (`KafkaSettings`).
"""

from __future__ import annotations

import importlib.util
from functools import cache

import structlog
from kafka.record import util

__all__ = ["checksums_in_c", "warn_if_checksums_in_python"]

log = structlog.get_logger("nervenbahn.bus")


def checksums_in_c() -> bool:
    """True if kafka-python computes its record batches' CRC-32C with the C extension.

    kafka-python 3 binds the implementation it chose as `calc_crc32c`'s default argument;
    earlier releases called a module-level `_crc32c`. Where neither can be told apart from
    its pure-Python `crc32c_py` (a release that renamed them), whether the extension imports
    decides."""
    chosen = (util.calc_crc32c.__defaults__ or (getattr(util, "_crc32c", None),))[0]
    python = getattr(util, "crc32c_py", None)
    if chosen is None or python is None:
        return importlib.util.find_spec("crc32c") is not None
    return chosen is not python


def warn_if_checksums_in_python() -> None:
    """Log a warning (once a process) if kafka-python checksums in pure Python; never
    raises (a Kafka client is made after it, whatever it found)."""
    try:
        in_c = checksums_in_c()
    except Exception:  # a kafka-python release shaped otherwise: say nothing
        return
    if not in_c:
        _warn_once()


@cache
def _warn_once() -> None:
    log.warning(
        "kafka-python computes CRC-32C in pure Python: about 75 µs a message sent and again "
        "a message received; install the crc32c package (kafka-python[crc32c], a dependency "
        "of nervenbahn)",
        crc32c_installed=False,
    )
