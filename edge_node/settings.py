"""The edge node's configuration: environment variables prefixed CCTV_.

Built once in the composition root and passed in. A bad value fails at
start with one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.addresses import MqttProtocol
from schemas.ids import check_id
from schemas.settings_types import ListenAddress, MqttUrlSetting, TopicPrefix
from schemas.topics import DEFAULT_PREFIX


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCTV_", env_file=".env", extra="ignore")

    node_id: str = Field(description="This node's id; also its MQTT user name and client id.")
    mqtt_url: MqttUrlSetting = Field(description="Broker URL with this node's account.")
    data_dir: Path = Field(default=Path(".cctv-edge"),
                           description="Desired state, outbox, segments waiting for upload.")
    storage_url: str = Field(default="", description="gs://bucket/prefix or file:///path; "
                             "default file storage under the data dir.")
    edge_http_addr: ListenAddress = Field(default="127.0.0.1:8081",
                                          description="Local API HOST:PORT.")
    topic_prefix: TopicPrefix = Field(default=DEFAULT_PREFIX, description="MQTT topic prefix.")
    log_level: str = Field(default="INFO", description="Logging level.")
    mqtt_protocol: MqttProtocol = Field(
        default="5", description="MQTT protocol version: 5, or 3.1.1 for a broker without 5.")
    mqtt_ca_file: Path | None = Field(default=None, description="CA file for mqtts://.")
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keepalive.")
    upload_max_bytes_per_s: int = Field(
        default=0, ge=0, description="Upload bandwidth cap in bytes per second; 0: none.")
    min_free_bytes: int = Field(
        default=1 << 30, ge=0, description="Free disk the node keeps by deleting segments.")
    max_local_bytes: int = Field(
        default=0, ge=0, description="Quota for all local segments in bytes; 0: none.")
    keep_uploaded_s: float = Field(
        default=86_400, ge=0, description="Keep uploaded segments locally this long.")
    resend_after_s: float = Field(
        default=30.0, gt=0, description="Resend unacknowledged events after this long "
                                        "without the cloud's ack advancing.")
    heartbeat_s: float = Field(
        default=30.0, gt=0, description="Heartbeat interval; never longer than the keepalive, "
                                        "since the cloud shows a node silent for 1.5 x "
                                        "keepalive offline.")

    @field_validator("node_id")
    @classmethod
    def _check_node_id(cls, value: str) -> str:
        return check_id(value, "node id")

    @field_validator("storage_url")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if value and not value.startswith(("gs://", "file:///")):
            raise ValueError("must be gs://bucket/prefix or file:///path")
        return value

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.data_dir / "storage").resolve().as_uri()

    @property
    def heartbeat_interval_s(self) -> float:
        return min(self.heartbeat_s, float(self.keepalive_s))
