"""The cloud service's composition root: database, broker link, ingest, API.

Everything is built here from `CloudSettings` and run on one asyncio loop;
nothing else in the package reads the environment or opens connections on
its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import uvicorn

from cloud_service.api.app import create_app
from cloud_service.api.context import ApiContext, Provisioning
from cloud_service.database import make_engine, migrate
from cloud_service.ingest import Ingest, ingest_subscriptions
from cloud_service.live import Live
from cloud_service.media_source import MediaSource
from cloud_service.mqtt_link import CloudLink
from cloud_service.settings import CloudSettings
from cloud_service.silence import watch_silence
from schemas.addresses import MqttUrl, file_root, parse_host_port
from schemas.topics import TopicTable

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting that cannot work; the message names it."""


def provisioning(settings: CloudSettings) -> Provisioning | None:
    if settings.broker_password_file is None:
        return None
    if not settings.broker_public_url:
        raise ConfigError("CCTV_BROKER_PUBLIC_URL: needed with CCTV_BROKER_PASSWORD_FILE")
    return Provisioning(settings.broker_password_file, settings.broker_public_url,
                        settings.broker_pid_file)


def media_source(settings: CloudSettings) -> MediaSource:
    url = settings.storage_url
    return MediaSource(file_root(url) if url.startswith("file://") else None)


async def serve(settings: CloudSettings, started: asyncio.Event | None = None) -> None:
    tokens = tuple(t.get_secret_value() for t in settings.api_tokens)
    if not tokens:
        raise ConfigError("CCTV_API_TOKENS: set at least one API token")
    host, port = parse_host_port(settings.http_addr, "CCTV_HTTP_ADDR")
    engine = make_engine(settings.resolved_database_url)
    await asyncio.to_thread(migrate, engine)
    topics = TopicTable(settings.topic_prefix)
    loop = asyncio.get_running_loop()

    def publish(topic: str, payload: bytes) -> None:
        link.publish(topic, payload)

    def publish_retained(topic: str, payload: bytes) -> None:
        # API routes run in worker threads; gmqtt lives on the loop.
        loop.call_soon_threadsafe(lambda: link.publish(topic, payload, retain=True))

    async def redeliver() -> None:
        await link.reconnect()

    ingest = Ingest(engine, topics, publish, on_failure=redeliver)
    live = Live()
    ingest.listeners.append(live.committed)
    link = CloudLink(
        MqttUrl.parse(settings.mqtt_url.get_secret_value()),
        client_id=f"cctv-cloud-{secrets.token_hex(4)}" if settings.ephemeral_session
        else settings.mqtt_client_id,
        handler=ingest.handle, subscriptions=lambda mqtt5: ingest_subscriptions(topics, mqtt5),
        ca_file=settings.mqtt_ca_file, protocol=settings.mqtt_protocol,
        persistent=not settings.ephemeral_session)
    app = create_app(ApiContext(
        engine, topics, publish_retained, tokens, publish=publish, live=live,
        provisioning=provisioning(settings), media=media_source(settings)))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    ingest.start()
    silence = asyncio.create_task(watch_silence(engine, live), name="silence")
    try:
        await link.start()
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110  # uvicorn offers only a flag
            await asyncio.sleep(0.05)
        if server.started:
            logger.info("cloud.serving url=http://%s:%d/", host, port)
            print(f"cloud service on http://{host}:{port}/", flush=True)  # noqa: T201
            if started is not None:
                started.set()
        await serving
    finally:
        silence.cancel()
        await link.stop()
        await ingest.stop()
        engine.dispose()
