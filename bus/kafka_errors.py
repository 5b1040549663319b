"""Errors of the bus's Kafka side, and the translation of kafka-python's errors into them.

Every Kafka call of the bus is wrapped so that a caller sees one of these (with the original
as `__cause__`), never a `kafka.errors` class: `translate_kafka_error` is the one mapping table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType

from bus.errors import BusError

__all__ = [
    "BrokerStartError",
    "BrokerUnavailableError",
    "KafkaConfigError",
    "KafkaOperationError",
    "TopicError",
    "kafka_errors_translated",
    "translate_kafka_error",
]


class KafkaConfigError(BusError):
    """The Kafka settings are incomplete or malformed (the message names the variable)."""


class BrokerUnavailableError(BusError):
    """The Kafka broker cannot be reached or did not answer in time; try again later."""


class BrokerStartError(BusError):
    """The embedded broker could not be started (binary missing, or it did not come up)."""


class TopicError(BusError):
    """A topic does not exist, is not allowed for us, or cannot be created as asked."""


class KafkaOperationError(BusError):
    """The broker refused a request for another reason (the message says which)."""


def _optional(kerr: ModuleType, name: str) -> type[Exception] | None:
    """A kafka-python error class that exists only in some versions (2.x vs 3.x)."""
    found = getattr(kerr, name, None)
    return found if isinstance(found, type) and issubclass(found, Exception) else None


@cache
def _table() -> dict[type[Exception], tuple[type[BusError], str]]:
    """kafka-python error class -> (our error class, what it means for the user). Looked up
    along the raised error's MRO, so the most specific entry wins. Built on first use: this
    module's error classes are imported by the settings, which every CLI start reads, and
    kafka-python takes a third of a second to import."""
    import kafka.errors as kerr

    table: dict[type[Exception], tuple[type[BusError], str]] = {
        kerr.KafkaTimeoutError: (BrokerUnavailableError, "the Kafka broker did not answer in time"),
        kerr.KafkaConnectionError: (BrokerUnavailableError, "the connection to Kafka failed"),
        kerr.NodeNotReadyError: (BrokerUnavailableError, "the Kafka broker is not ready"),
        kerr.RequestTimedOutError: (BrokerUnavailableError, "a Kafka request timed out"),
        kerr.LeaderNotAvailableError: (BrokerUnavailableError, "a partition has no leader yet"),
        kerr.NotLeaderForPartitionError: (BrokerUnavailableError, "partition leadership moved"),
        kerr.CoordinatorNotAvailableError: (
            BrokerUnavailableError, "the consumer group coordinator is not available"
        ),
        kerr.UnknownTopicOrPartitionError: (TopicError, "the topic or partition does not exist"),
        kerr.TopicAuthorizationFailedError: (TopicError, "not authorised for the topic"),
        kerr.InvalidTopicError: (TopicError, "the topic name is not valid"),
        kerr.TopicAlreadyExistsError: (TopicError, "the topic exists already"),
        kerr.InvalidPartitionsError: (TopicError, "invalid number of partitions"),
        kerr.InvalidReplicationFactorError: (TopicError, "invalid replication factor"),
        kerr.InvalidConfigurationError: (TopicError, "invalid topic configuration"),
        kerr.PolicyViolationError: (TopicError, "the broker's topic policy refused the request"),
        kerr.KafkaConfigurationError: (KafkaConfigError, "invalid Kafka client configuration"),
        kerr.KafkaError: (KafkaOperationError, "Kafka refused the request"),
    }
    for name, entry in {
        "NoBrokersAvailable": (BrokerUnavailableError, "no Kafka broker is reachable"),  # 2.x
    }.items():
        if (cls := _optional(kerr, name)) is not None:
            table[cls] = entry
    return table


def _kafka_error() -> type[Exception]:
    """kafka-python's root error class (imported when a block has raised, see below)."""
    import kafka.errors as kerr

    return kerr.KafkaError


def translate_kafka_error(exc: BaseException, action: str = "") -> BusError:
    """Our error for a kafka-python (or socket) error; raise it `from exc`.

    `action` says what the bus was doing ("create topics", "publish"); the message is
    `<action>: <meaning> (<original error>)`.
    """
    if isinstance(exc, BusError):
        return exc
    for cls in type(exc).__mro__:
        if cls in _table():
            ours, meaning = _table()[cls]
            break
    else:
        if isinstance(exc, OSError):
            ours, meaning = BrokerUnavailableError, "the connection to Kafka failed"
        else:
            ours, meaning = KafkaOperationError, "unexpected error talking to Kafka"
    name = type(exc).__name__
    detail = str(exc) or name
    if not detail.startswith(name):
        detail = f"{name}: {detail}"
    prefix = f"{action}: " if action else ""
    return ours(f"{prefix}{meaning} ({detail})")


@contextmanager
def kafka_errors_translated(action: str) -> Iterator[None]:
    """Run a block of Kafka calls; a kafka-python error leaves it as our error."""
    try:
        yield
    except (_kafka_error(), OSError) as exc:  # evaluated only once the block has raised
        raise translate_kafka_error(exc, action) from exc
