"""The AsyncAPI document: shape, channels, references, and the committed copy in docs/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from schemas import Channel
from schemas.asyncapi import asyncapi_document
from schemas.codec import ADAPTERS
from schemas.events import EVENT_KINDS
from schemas.ids import ID_PATTERN
from schemas.topics import CHANNELS, DEFAULT_PREFIX

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
REGENERATE = "run `cctv schemas asyncapi > docs/asyncapi.json`"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document()


def _refs(node: Any, where: str = "#") -> list[tuple[str, str]]:
    """Every reference in the document, with where it sits: `$ref` values and the
    targets of discriminator mappings (which are references too)."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                assert isinstance(value, str), f"{where}/$ref is not a string"
                found.append((where, value))
            elif key == "discriminator" and isinstance(value, dict) and "mapping" in value:
                found.extend((f"{where}/discriminator/mapping/{tag}", target)
                             for tag, target in value["mapping"].items())
            found.extend(_refs(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_refs(value, f"{where}/{index}"))
    return found


def _resolve(document: dict[str, Any], ref: str) -> Any:
    """A JSON pointer inside the document (RFC 6901), or KeyError/ValueError."""
    if not ref.startswith("#/"):
        raise ValueError(f"{ref} points outside the document")
    target: Any = document
    for raw in ref[2:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        target = target[int(token)] if isinstance(target, list) else target[token]
    return target


def test_version_and_info(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", document["info"]["version"])
    assert document["defaultContentType"] == "application/json"
    assert {server["protocol"] for server in document["servers"].values()} <= {
        "mqtt", "secure-mqtt"}


def test_one_channel_per_channel(document: dict[str, Any]) -> None:
    assert set(document["channels"]) == {c.value for c in Channel}


@pytest.mark.parametrize("channel", list(Channel), ids=str)
def test_channel_address_and_parameters(document: dict[str, Any], channel: Channel) -> None:
    entry = document["channels"][channel.value]
    spec = CHANNELS[channel]
    if channel is Channel.EVENTS:
        assert entry["address"] == "cctv/v1/{node_id}/events/{kind}"
        assert set(entry["parameters"]) == {"node_id", "kind"}
        assert entry["parameters"]["kind"]["enum"] == list(EVENT_KINDS)
    else:
        assert entry["address"] == f"cctv/v1/{{node_id}}/{channel.value}"
        assert set(entry["parameters"]) == {"node_id"}
    assert ID_PATTERN in entry["parameters"]["node_id"]["description"]
    # Every {placeholder} in the address is a declared parameter, and no more.
    assert set(re.findall(r"\{(\w+)\}", entry["address"])) == set(entry["parameters"])
    assert entry["description"] == spec.summary
    assert list(entry["messages"]) == [spec.payload]


@pytest.mark.parametrize("channel", list(Channel), ids=str)
def test_channel_message_payload_is_the_model(document: dict[str, Any], channel: Channel) -> None:
    spec = CHANNELS[channel]
    message = _resolve(document, document["channels"][channel.value]["messages"][spec.payload]
                       ["$ref"])
    assert message["name"] == spec.payload
    assert message["contentType"] == "application/json"
    assert message["payload"] == {"$ref": f"#/components/schemas/{spec.payload}"}
    schema = ADAPTERS[channel].json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    assert _resolve(document, message["payload"]["$ref"]) == schema


@pytest.mark.parametrize("channel", list(Channel), ids=str)
def test_operation_per_channel(document: dict[str, Any], channel: Channel) -> None:
    spec = CHANNELS[channel]
    action = "receive" if spec.to_node else "send"
    name = f"{action}{channel.value[:1].upper()}{channel.value[1:]}"
    operation = document["operations"][name]
    assert operation["action"] == action
    assert operation["channel"] == {"$ref": f"#/channels/{channel.value}"}
    assert operation["bindings"]["mqtt"]["qos"] == spec.qos == 1
    assert operation["bindings"]["mqtt"]["retain"] is spec.retained
    assert operation["messages"] == [
        {"$ref": f"#/channels/{channel.value}/messages/{spec.payload}"}]


def test_one_operation_per_channel(document: dict[str, Any]) -> None:
    channels = [op["channel"]["$ref"] for op in document["operations"].values()]
    assert sorted(channels) == sorted(f"#/channels/{c.value}" for c in Channel)


def test_custom_prefix() -> None:
    document = asyncapi_document("acme/cctv/v2")
    assert document["channels"]["status"]["address"] == "acme/cctv/v2/{node_id}/status"
    assert document["channels"]["events"]["address"] == "acme/cctv/v2/{node_id}/events/{kind}"


def test_every_ref_resolves_inside_the_document(document: dict[str, Any]) -> None:
    refs = _refs(document)
    assert len(refs) > 3 * len(Channel)
    unresolved = []
    for where, ref in refs:
        try:
            target = _resolve(document, ref)
        except (KeyError, IndexError, ValueError):
            unresolved.append(f"{where} -> {ref}")
            continue
        if not isinstance(target, dict):
            unresolved.append(f"{where} -> {ref} (not an object)")
    assert not unresolved, "unresolved references:\n" + "\n".join(unresolved)


def test_every_schema_is_referenced(document: dict[str, Any]) -> None:
    used = {ref for _, ref in _refs(document)}
    unused = [name for name in document["components"]["schemas"]
              if f"#/components/schemas/{name}" not in used]
    assert not unused


def test_schema_definitions_do_not_collide(document: dict[str, Any]) -> None:
    """Every model's definition is the same in each adapter that uses it, so merging
    them into one `components.schemas` lost nothing."""
    components = document["components"]["schemas"]
    for channel, adapter in ADAPTERS.items():
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.get("$defs", {}).items():
            assert components[name] == definition, f"{name} differs in {channel}'s schema"


def test_payload_schemas_are_closed(document: dict[str, Any]) -> None:
    """Unknown fields are rejected: every object model says so."""
    for name, schema in document["components"]["schemas"].items():
        if schema.get("type") == "object" and "properties" in schema:
            assert schema.get("additionalProperties") is False, name


def test_document_is_pure_json(document: dict[str, Any]) -> None:
    assert json.loads(json.dumps(document)) == document
    assert asyncapi_document() == document  # deterministic


def test_committed_document_is_current(document: dict[str, Any]) -> None:
    assert COMMITTED.exists(), f"{COMMITTED} is missing: {REGENERATE}"
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(document)), (
        f"{COMMITTED} is stale: {REGENERATE}")


def test_committed_document_uses_the_generated_format() -> None:
    """Two-space indent, key order as generated, one final newline: a regenerated
    file makes no diff."""
    expected = json.dumps(asyncapi_document(DEFAULT_PREFIX), indent=2, sort_keys=False) + "\n"
    assert COMMITTED.read_text(encoding="utf-8") == expected, (
        f"{COMMITTED} is not as generated: {REGENERATE}")
