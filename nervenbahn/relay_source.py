"""What a relay's preparing process reads and encodes with (`bus.relay_batches`): the dataset's
notification log and encoder, built in that process from the relay's settings by a container
of its own (its own connections to the store and the registry)."""

from __future__ import annotations

from bus.kafka_settings import KafkaSettings
from bus.relay_batches import RelaySource
from nervenbahn.config import Settings

__all__ = ["relay_source"]


def relay_source(settings: Settings, kafka: KafkaSettings, name: str) -> RelaySource:
    """The notification log and encoder of dataset `name`'s relay, and what closes them.
    Called in the preparing process (spawned: it imports this module anew)."""
    from nervenbahn.container import Container
    from nervenbahn.datasets import dataset
    from nervenbahn.logging import configure_logging_from_environment

    configure_logging_from_environment()
    container = Container(settings, kafka=kafka)
    spec = dataset(name)
    assert spec.encoder is not None
    assert spec.source is not None
    encoder = spec.encoder(container, lambda: container.codec(name))
    return spec.source(container), encoder, container.close
