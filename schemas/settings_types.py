"""Setting types both services share, validated the same way: a broker URL,
a HOST:PORT to listen on, a topic prefix. Pure."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, SecretStr

from schemas.addresses import MqttUrl, parse_host_port
from schemas.topics import TopicTable


def _mqtt_url(value: SecretStr) -> SecretStr:
    MqttUrl.parse(value.get_secret_value())
    return value


def _host_port(value: str) -> str:
    parse_host_port(value, "an address to listen on")
    return value


def _prefix(value: str) -> str:
    TopicTable(value)
    return value


MqttUrlSetting = Annotated[SecretStr, AfterValidator(_mqtt_url)]
ListenAddress = Annotated[str, AfterValidator(_host_port)]
TopicPrefix = Annotated[str, AfterValidator(_prefix)]
