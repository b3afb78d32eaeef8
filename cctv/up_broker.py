"""The broker `cctv up` runs: Mosquitto from mosquitto.conf when installed,
else the embedded amqtt broker, either way with accounts and the ACL.

Port 1883 is used when free; otherwise any free port, so `cctv up` works
beside a system broker.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from broker.launcher import MosquittoBroker, find_mosquitto, free_port
from broker.passwords import RESERVED_ACCOUNTS, add_accounts
from broker.provisioning import node_mqtt_url

DEFAULT_PORT = 1883


class _Broker(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def password_file(self) -> Path: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class LocalBroker:
    kind: str
    host: str
    port: int
    passwords: dict[str, str]
    protocol: str = "5"

    @property
    def public_url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def url(self, username: str) -> str:
        return node_mqtt_url(self.public_url, username, self.passwords[username])

    def pub_command(self, node_id: str, camera_id: str) -> str:
        """The one-line manual trigger for this broker, ready to paste."""
        password = self.passwords["cctv-operator"]
        payload = (f'{{"command_id":"demo-1","command":"record","camera_id":"{camera_id}",'
                   '"duration_s":30}')
        return (f"mosquitto_pub -h {self.host} -p {self.port} -u cctv-operator "
                f"-P {shlex.quote(password)} -q 1 -t cctv/v1/{node_id}/commands "
                f"-m {shlex.quote(payload)}")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class BrokerChoice(StrEnum):
    AUTO = "auto"
    MOSQUITTO = "mosquitto"
    EMBEDDED = "embedded"


@contextlib.contextmanager
def start_broker(run_dir: Path, node_ids: Sequence[str],
                 choice: BrokerChoice = BrokerChoice.AUTO) -> Iterator[LocalBroker]:
    port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    broker: _Broker
    mosquitto = find_mosquitto()
    if choice is BrokerChoice.MOSQUITTO and mosquitto is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    if mosquitto is not None and choice is not BrokerChoice.EMBEDDED:
        broker, kind = MosquittoBroker(run_dir, port=port), "mosquitto"
    else:
        from broker.embedded import EmbeddedBroker  # noqa: PLC0415  # amqtt only when needed

        broker, kind = EmbeddedBroker(run_dir, port=port), "embedded amqtt"
    passwords = add_accounts(broker.password_file, [*RESERVED_ACCOUNTS, *node_ids])
    broker.start()
    try:
        # amqtt speaks MQTT 3.1.1 only.
        yield LocalBroker(kind, broker.host, broker.port, passwords,
                          "5" if kind == "mosquitto" else "3.1.1")
    finally:
        broker.stop()
