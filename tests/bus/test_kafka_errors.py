"""The translation table of kafka-python errors into the bus's own."""

from __future__ import annotations

import kafka.errors as kerr
import pytest

from bus.errors import BusError
from bus.kafka_errors import (
    BrokerStartError,
    BrokerUnavailableError,
    KafkaConfigError,
    KafkaOperationError,
    TopicError,
    kafka_errors_translated,
    translate_kafka_error,
)

MAPPING = [
    (kerr.KafkaTimeoutError("Unable to bootstrap"), BrokerUnavailableError, "did not answer"),
    (kerr.KafkaConnectionError("refused"), BrokerUnavailableError, "connection to Kafka"),
    (kerr.NodeNotReadyError("node 1"), BrokerUnavailableError, "not ready"),
    (kerr.RequestTimedOutError(), BrokerUnavailableError, "timed out"),
    (kerr.LeaderNotAvailableError(), BrokerUnavailableError, "no leader"),
    (kerr.NotLeaderForPartitionError(), BrokerUnavailableError, "leadership moved"),
    (kerr.CoordinatorNotAvailableError(), BrokerUnavailableError, "coordinator"),
    (kerr.UnknownTopicOrPartitionError(), TopicError, "does not exist"),
    (kerr.TopicAuthorizationFailedError(), TopicError, "not authorised"),
    (kerr.InvalidTopicError(), TopicError, "name is not valid"),
    (kerr.TopicAlreadyExistsError(), TopicError, "exists already"),
    (kerr.InvalidPartitionsError(), TopicError, "partitions"),
    (kerr.InvalidReplicationFactorError(), TopicError, "replication factor"),
    (kerr.InvalidConfigurationError(), TopicError, "configuration"),
    (kerr.PolicyViolationError(), TopicError, "policy"),
    (kerr.KafkaConfigurationError("bad"), KafkaConfigError, "client configuration"),
    (kerr.GroupAuthorizationFailedError(), KafkaOperationError, "refused"),
    (kerr.KafkaError("odd"), KafkaOperationError, "refused"),
    (ConnectionRefusedError(111, "refused"), BrokerUnavailableError, "connection to Kafka"),
    (ValueError("no idea"), KafkaOperationError, "unexpected"),
]


@pytest.mark.parametrize(
    ("error", "expected", "phrase"), MAPPING, ids=[type(e).__name__ for e, _, _ in MAPPING]
)
def test_kafka_error_translates_to_bus_error(
    error: Exception, expected: type[BusError], phrase: str
) -> None:
    translated = translate_kafka_error(error, "publish")

    assert type(translated) is expected
    assert isinstance(translated, BusError)
    assert str(translated).startswith("publish: ")
    assert phrase in str(translated)
    assert type(error).__name__ in str(translated)


@pytest.mark.skipif(not hasattr(kerr, "NoBrokersAvailable"), reason="kafka-python 3 has none")
def test_no_brokers_available_of_kafka_python_2_is_unavailable() -> None:
    error = kerr.NoBrokersAvailable()  # type: ignore[attr-defined, unused-ignore]
    assert isinstance(translate_kafka_error(error), BrokerUnavailableError)


def test_subclass_of_a_mapped_error_takes_the_nearest_entry() -> None:
    class SlowBroker(kerr.KafkaTimeoutError):  # type: ignore[misc]
        pass

    assert isinstance(translate_kafka_error(SlowBroker()), BrokerUnavailableError)


def test_bus_error_passes_through_unchanged() -> None:
    ours = TopicError("already ours")
    assert translate_kafka_error(ours) is ours


def test_message_names_the_error_once() -> None:
    message = str(translate_kafka_error(kerr.KafkaTimeoutError("Unable to bootstrap from x:1")))

    assert message == (
        "the Kafka broker did not answer in time (KafkaTimeoutError: Unable to bootstrap from x:1)"
    )


def test_block_raises_translated_error_with_original_as_cause() -> None:
    original = kerr.UnknownTopicOrPartitionError()

    with pytest.raises(TopicError, match=r"^count messages: ") as caught, \
            kafka_errors_translated("count messages"):
        raise original

    assert caught.value.__cause__ is original


def test_block_leaves_other_errors_alone() -> None:
    with pytest.raises(KeyError), kafka_errors_translated("anything"):
        raise KeyError("not Kafka's")


@pytest.mark.parametrize(
    "error",
    [BrokerUnavailableError, BrokerStartError, TopicError, KafkaConfigError, KafkaOperationError],
)
def test_every_kafka_error_is_a_bus_error_with_a_docstring(error: type[BusError]) -> None:
    assert issubclass(error, BusError)
    assert error.__doc__
