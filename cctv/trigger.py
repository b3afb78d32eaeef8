"""`cctv trigger`: a manual recording over MQTT, as an operator.

Publishes a `record` command and waits for the node's reply on `replies`;
the exit code says what happened (0 accepted, 1 refused, 2 no reply).
"""

from __future__ import annotations

import queue
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import TypeAdapter

from schemas.addresses import MqttUrl
from schemas.codec import PayloadError, decode, encode
from schemas.commands import CommandReply, RecordCommand
from schemas.ids import new_id
from schemas.topics import Channel, TopicTable

ACCEPTED, REFUSED, NO_REPLY = 0, 1, 2
_REPLY: TypeAdapter[CommandReply] = TypeAdapter(CommandReply)


class TriggerError(RuntimeError):
    """The broker could not be reached or refused the operator."""


def send_record(url: MqttUrl, topics: TopicTable, *, node_id: str, camera_id: str,
                duration_s: int, timeout_s: float,
                ca_file: Path | None = None) -> tuple[int, CommandReply | None]:
    command = RecordCommand(command_id=new_id(), command="record", camera_id=camera_id,
                            duration_s=duration_s)
    replies: queue.Queue[CommandReply] = queue.Queue()
    connected: queue.Queue[ReasonCode] = queue.Queue()

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(topics.topic(node_id, Channel.REPLIES), qos=1)
        connected.put(reason)

    def on_subscribe(client: mqtt.Client, *_: Any) -> None:
        client.publish(topics.topic(node_id, Channel.COMMANDS), encode(command), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            reply = decode(bytes(message.payload), _REPLY)
        except PayloadError:
            return
        if reply.command_id == command.command_id:
            replies.put(reply)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cctv-trigger-{new_id()[:18]}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set(ca_certs=str(ca_file) if ca_file else None,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError as exc:
        raise TriggerError(f"cannot reach the broker at {url.redacted()}: {exc}") from exc
    client.loop_start()
    try:
        try:
            reason = connected.get(timeout=timeout_s)
        except queue.Empty:
            raise TriggerError(f"no answer from the broker at {url.redacted()}") from None
        if reason.is_failure:
            raise TriggerError(f"the broker refused {url.username}: {reason}")
        try:
            reply = replies.get(timeout=timeout_s)
        except queue.Empty:
            return NO_REPLY, None
        return (ACCEPTED if reply.ok else REFUSED), reply
    finally:
        client.loop_stop()
        client.disconnect()
