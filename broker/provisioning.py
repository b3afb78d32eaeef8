"""Provisioning nodes and service accounts: broker credentials plus the env
file a node runs with. Passwords are printed once and stored only as hashes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, urlsplit

from broker.passwords import add_accounts, validate_node_id
from schemas.addresses import MqttUrl


def node_mqtt_url(broker_url: str, username: str, password: str) -> str:
    """The broker URL with this account's credentials in it."""
    MqttUrl.parse(broker_url)  # ValueError for a bad URL
    parts = urlsplit(broker_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{quote(username, safe='')}:{quote(password, safe='')}@{host}{port}"


def env_file(node_id: str, mqtt_url: str) -> str:
    return f"CCTV_NODE_ID={node_id}\nCCTV_MQTT_URL={mqtt_url}\n"


def provision_nodes(password_file: Path, node_ids: Iterable[str],
                    broker_url: str) -> dict[str, str]:
    """Create (or reset) each node's broker account; return node_id -> env file text."""
    ids = [validate_node_id(n) for n in node_ids]
    MqttUrl.parse(broker_url)
    credentials = add_accounts(password_file, ids)
    return {n: env_file(n, node_mqtt_url(broker_url, n, credentials[n])) for n in ids}
