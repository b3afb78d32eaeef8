"""Addresses in configuration: `CCTV_MQTT_URL` and `HOST:PORT` settings.

`mqtt://user:pass@host:1883` or `mqtts://...` for TLS (default ports 1883 and
8883). Parsed once at start so a bad URL fails with a line naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# MQTT 5 in production; 3.1.1 only for a broker that speaks nothing else (the
# embedded amqtt demo broker), at the cost of acknowledge-after-commit.
MqttProtocol = Literal["5", "3.1.1"]


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"not an mqtt:// URL: {exc}") from None
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError("scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("URL has no host")
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_host_port(value: str, setting: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) or ValueError naming `setting`."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{setting} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def file_root(storage_url: str) -> Path:
    """The directory of a `file:///path` storage URL."""
    parts = urlsplit(storage_url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError(f"not a file:/// URL: {storage_url!r}")
    return Path(unquote(parts.path))
