"""The AsyncAPI 3.0 document of the MQTT contract, generated from the models.

Built from `CHANNELS` and the pydantic models, so it cannot drift from what
the code accepts; the committed copy in docs/ is checked by a test. Written
from the edge node's point of view (it receives `schedules`, sends `events`).
Pure: returns a dict, never writes a file.
"""

from __future__ import annotations

from typing import Any

from schemas.codec import ADAPTERS
from schemas.events import EVENT_KINDS
from schemas.ids import ID_PATTERN
from schemas.topics import CHANNELS, DEFAULT_PREFIX, Channel

ASYNCAPI_VERSION = "3.0.0"
PROTOCOL_VERSION = "1.0.0"


def _camel(name: str) -> str:
    return name[:1].upper() + name[1:]


def asyncapi_document(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    node_param = {"description": f"The node's id; matches {ID_PATTERN}."}
    for channel, spec in CHANNELS.items():
        schema = ADAPTERS[channel].json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[spec.payload] = schema
        messages[spec.payload] = {
            "name": spec.payload,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{spec.payload}"},
        }
        parameters: dict[str, Any] = {"node_id": node_param}
        address = f"{prefix}/{{node_id}}/{channel.value}"
        if channel is Channel.EVENTS:
            address += "/{kind}"
            parameters["kind"] = {"enum": list(EVENT_KINDS),
                                  "description": "The part of the event's type before the dot."}
        channels[channel.value] = {
            "address": address,
            "description": spec.summary,
            "parameters": parameters,
            "messages": {spec.payload: {"$ref": f"#/components/messages/{spec.payload}"}},
        }
        operations[f"{'receive' if spec.to_node else 'send'}{_camel(channel.value)}"] = {
            "action": "receive" if spec.to_node else "send",
            "channel": {"$ref": f"#/channels/{channel.value}"},
            "summary": spec.summary,
            "bindings": {"mqtt": {"qos": spec.qos, "retain": spec.retained,
                                  "bindingVersion": "0.2.0"}},
            "messages": [{"$ref": f"#/channels/{channel.value}/messages/{spec.payload}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "CCTV fleet MQTT contract",
            "version": PROTOCOL_VERSION,
            "description": (
                "Topics and payloads between the cloud service, operators and edge "
                "nodes. Every payload is UTF-8 JSON; unknown fields are rejected; "
                "timestamps are UTC ISO 8601 with offset."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {"host": "localhost:1883", "protocol": "mqtt",
                       "description": "Mosquitto with password auth and a per-node ACL."},
            "broker-tls": {"host": "localhost:8883", "protocol": "secure-mqtt"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": messages},
    }
