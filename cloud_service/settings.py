"""The cloud service's configuration: environment variables prefixed CCTV_.

Built once in the composition root (never at import) and passed in. A bad
value fails at start with one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from schemas.addresses import MqttProtocol
from schemas.settings_types import ListenAddress, MqttUrlSetting, TopicPrefix
from schemas.topics import DEFAULT_PREFIX


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCTV_", env_file=".env", extra="ignore")

    mqtt_url: MqttUrlSetting = Field(
        default=SecretStr("mqtt://cctv-cloud@127.0.0.1:1883"),
        description="Broker URL with the cctv-cloud account, mqtt:// or mqtts://.")
    data_dir: Path = Field(default=Path(".cctv"), description="Where the SQLite file lives.")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in the data dir.")
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Comma-separated bearer tokens for /api.")
    http_addr: ListenAddress = Field(default="127.0.0.1:8000",
                                     description="HOST:PORT to serve on.")
    topic_prefix: TopicPrefix = Field(default=DEFAULT_PREFIX, description="MQTT topic prefix.")
    storage_url: str = Field(default="", description="Where segments are stored, for playback.")
    broker_password_file: Path | None = Field(
        default=None, description="Mosquitto password file the service provisions nodes in.")
    broker_public_url: str | None = Field(
        default=None, description="Broker URL given to provisioned nodes.")
    broker_pid_file: Path | None = Field(
        default=None, description="Mosquitto pid file, signalled to reload new accounts.")
    log_level: str = Field(default="INFO", description="Logging level.")
    mqtt_client_id: str = Field(
        default="cctv-cloud-ingest",
        description="MQTT client id; its persistent session holds messages while down. "
                    "Give each cloud process its own.")
    ephemeral_session: bool = Field(
        default=False, description="Use a random client id (tests, throwaway runs).")
    mqtt_protocol: MqttProtocol = Field(
        default="5", description="MQTT protocol version: 5, or 3.1.1 for a broker without 5.")
    mqtt_ca_file: Path | None = Field(default=None, description="CA file for mqtts://.")

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                make_url(value.get_secret_value())
            except ArgumentError:
                raise ValueError("not a SQLAlchemy URL (sqlite:///path or "
                                 "postgresql+psycopg://user@host/db)") from None
        return value




    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'cloud.db').resolve()}"
