"""`nervenbahn serve`: the HTTP API, the relays and the read models' consumers, together."""

from __future__ import annotations

import signal
from dataclasses import replace
from typing import Annotated

import typer

from bus.topics import ensure_topics, installation_topics
from domain.commands import build_validators
from nervenbahn.api import create_app
from nervenbahn.paths import store_folder
from nervenbahn.serve import Server
from nervenbahn.startup import settle

from .session import session


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP API.", min=1, max=65535)] = 8000,
) -> None:
    """Run the API (OpenAPI docs at /docs), the relays and the projections until Ctrl-C.

    Uses NERVENBAHN_KAFKA, or starts the embedded broker for as long as it runs, and creates
    every topic the installation uses (`nervenbahn topics create`) before anything runs. A worker
    that fails is restarted with back-off; one that keeps failing (NERVENBAHN_WORKER_MAX_RESTARTS
    within NERVENBAHN_WORKER_RESTART_WINDOW_SECONDS) stops serve with exit code 3, as does a
    consumer group or topic name that is not valid (checked before anything starts).
    """
    rt = session(ctx)
    container = rt.container
    # First, so that an access log it cannot use (unchained, unreadable) is refused (exit 3)
    # before a broker or relay starts.
    context = container.api_context()
    try:
        with container.kafka_or_embedded(store_folder(rt.settings.store)) as kafka:
            # /asyncapi.json describes the broker in use (the embedded one's address too)
            app = create_app(replace(context, kafka=kafka))
            server = Server(container, app, host=host, port=port)
            try:
                server.check_names()  # before any topic or thread is made
                # Every topic the installation uses, the audit checkpoints' too (its first
                # message comes minutes later), so that a subscriber starting now finds it.
                groups = [container.projection(name).group for name in server.projections]
                ensure_topics(kafka, installation_topics(kafka, groups))
                for signum in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(signum, lambda *_: server.stop_soon())
                build_validators()  # every command's, before a request needs one
                settle()  # what the process keeps is built: out of the collector's way
                server.start()
                if not server.wait_until_serving():
                    raise server.failure or typer.Exit(3)
                rt.console.print(f"nervenbahn serving on {server.url} (docs: {server.url}/docs); "
                                 f"Kafka {', '.join(kafka.bootstrap_servers)}; Ctrl-C stops")
                server.run_until_stopped()
            finally:
                server.stop()
    finally:
        context.close()
