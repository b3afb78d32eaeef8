"""A minimal MQTT 5 client for benchmarks: CONNECT (with a Last Will), SUBSCRIBE,
QoS 0/1 PUBLISH and PINGREQ over an asyncio `Protocol`, with no task per connection.

The benchmarks need thousands of simulated nodes in a few processes, and
publishers that are never the bottleneck; a full client (paho's thread, gmqtt's
tasks and resend queue) costs more per connection and per message than the
system under test should be compared against. This one only frames packets:
no reconnect, no resend, no QoS 2, no topic aliases. A connection that drops
stays dropped, and `lost` says so.

Publishing goes two ways: `publish()` for an occasional message, and a
`PublishPump` that keeps up to the broker's Receive Maximum of pre-built
packets in flight on one connection until all are acknowledged.

Only for `bench/`: it must never be imported by the services themselves.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

# Property identifier -> wire type, for the properties a broker may send (MQTT 5 §2.2.2.2).
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT,
    0x11: _U32, 0x12: _STR, 0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32,
    0x19: _BYTE, 0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16,
    0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32, 0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
RECEIVE_MAXIMUM = 0x21
SESSION_EXPIRY = 0x11


class MqttError(RuntimeError):
    """The broker refused us, or the connection broke before an answer."""


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def binary(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def connect_packet(client_id: str, username: str, password: str, *, keepalive: int,
                   clean_start: bool, session_expiry_s: int = 0,
                   will: Will | None = None) -> bytes:
    flags = 0x80 | 0x40 | (0x02 if clean_start else 0)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    properties = bytes([SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
    body = (utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
            + varint(len(properties)) + properties + utf8(client_id))
    if will is not None:
        body += b"\x00" + utf8(will.topic) + binary(will.payload)  # no will properties
    body += utf8(username) + binary(password.encode())
    return _packet(CONNECT << 4, body)


def subscribe_packet(packet_id: int, filters: Sequence[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00"
    for topic_filter in filters:
        body += utf8(topic_filter) + bytes([qos])
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def puback_packet(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


@dataclass
class PreparedPublish:
    """A QoS 1 PUBLISH built once; only its packet id is written at send time."""

    data: bytearray
    id_offset: int

    def with_id(self, packet_id: int) -> bytearray:
        struct.pack_into("!H", self.data, self.id_offset, packet_id)
        return self.data


def prepare_publish(topic: str, payload: bytes, *, retain: bool = False) -> PreparedPublish:
    variable = utf8(topic)
    body_len = len(variable) + 2 + 1 + len(payload)  # packet id, empty properties
    head = bytes([PUBLISH << 4 | 0x02 | (0x01 if retain else 0)]) + varint(body_len)
    data = bytearray(head + variable + b"\x00\x00" + b"\x00" + payload)
    return PreparedPublish(data, len(head) + len(variable))


def publish_packet(topic: str, payload: bytes, *, qos: int, packet_id: int = 0,
                   retain: bool = False) -> bytes:
    if qos == 0:
        body = utf8(topic) + b"\x00" + payload
        return _packet(PUBLISH << 4 | (0x01 if retain else 0), body)
    return bytes(prepare_publish(topic, payload, retain=retain).with_id(packet_id))


def _read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    for i in range(pos, min(pos + 4, len(data))):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    return None


def parse_properties(data: bytes, pos: int) -> tuple[dict[int, object], int]:
    """The property block at `pos`, and the position after it."""
    parsed = _read_varint(data, pos)
    if parsed is None:
        raise MqttError("truncated properties")
    length, pos = parsed
    end, out = pos + length, {}
    while pos < end:
        ident = data[pos]
        kind = _PROPERTY_TYPES.get(ident)
        pos += 1
        value: object
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _U16:
            value, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif kind == _U32:
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == _VARINT:
            got = _read_varint(data, pos)
            if got is None:
                raise MqttError("truncated property")
            value, pos = got
        elif kind in (_STR, _BIN):
            size = struct.unpack_from("!H", data, pos)[0]
            value, pos = data[pos + 2:pos + 2 + size], pos + 2 + size
        elif kind == _PAIR:
            for _ in range(2):
                pos += 2 + struct.unpack_from("!H", data, pos)[0]
            value = None
        else:
            raise MqttError(f"unknown property 0x{ident:02x}")
        out[ident] = value
    return out, end


MessageHandler = Callable[[str, bytes], None]


class MqttConnection(asyncio.Protocol):
    """One MQTT 5 connection. Callbacks run on the loop and must not raise."""

    def __init__(self, *, on_message: MessageHandler | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._connack: asyncio.Future[tuple[int, int, dict[int, object]]] = (
            asyncio.get_running_loop().create_future())
        self._waiters: dict[int, asyncio.Future[bytes]] = {}
        self._next_id = 0
        self.on_message = on_message
        self.on_puback: Callable[[int, int], None] | None = None
        self.receive_maximum = 65535
        self.pubacks = 0
        self.refused = 0  # PUBACKs with a reason code >= 0x80 (e.g. 135, not authorized)
        self.last_sent = 0.0  # time.monotonic() of the last packet written
        self.lost = False
        self.frozen = False

    # --- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self._connack.done():
            self._connack.set_exception(MqttError(f"connection lost before CONNACK: {exc}"))
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(MqttError("connection lost"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos = 0
        while len(buffer) - pos >= 2:
            parsed = _read_varint(buffer, pos + 1)
            if parsed is None:
                break
            length, start = parsed
            if len(buffer) - start < length:
                break
            self._dispatch(buffer[pos] >> 4, buffer[pos] & 0x0F,
                           bytes(buffer[start:start + length]))
            pos = start + length
        del buffer[:pos]

    # --- packets in --------------------------------------------------------------

    def _dispatch(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PUBACK:
            packet_id = (body[0] << 8) | body[1]
            reason = body[2] if len(body) > 2 else 0
            self.pubacks += 1
            if reason >= 0x80:
                self.refused += 1
            if self.on_puback is not None:
                self.on_puback(packet_id, reason)
        elif kind == PUBLISH:
            self._publish_in(flags, body)
        elif kind == CONNACK:
            if not self._connack.done():
                properties, _ = parse_properties(body, 2)
                self._connack.set_result((body[0], body[1], properties))
        elif kind == SUBACK:
            waiter = self._waiters.pop(struct.unpack_from("!H", body)[0], None)
            if waiter is not None and not waiter.done():
                _, end = parse_properties(body, 2)
                waiter.set_result(body[end:])

    def _publish_in(self, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 0x03
        size = struct.unpack_from("!H", body)[0]
        topic = body[2:2 + size].decode()
        pos = 2 + size
        packet_id = 0
        if qos:
            packet_id = struct.unpack_from("!H", body, pos)[0]
            pos += 2
        _, pos = parse_properties(body, pos)
        if self.on_message is not None:
            self.on_message(topic, body[pos:])
        if qos == 1 and not self.frozen:
            self.write(puback_packet(packet_id))

    # --- packets out -------------------------------------------------------------

    def write(self, data: bytes | bytearray) -> None:
        if self.transport is not None and not self.lost and not self.frozen:
            self.transport.write(data)
            self.last_sent = time.monotonic()

    def new_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def handshake(self, packet: bytes) -> tuple[bool, int]:
        """Send CONNECT, wait for CONNACK; returns (session_present, receive_maximum)."""
        self.write(packet)
        flags, reason, properties = await self._connack
        if reason != 0:
            raise MqttError(f"CONNACK reason code {reason}")
        maximum = properties.get(RECEIVE_MAXIMUM)
        self.receive_maximum = maximum if isinstance(maximum, int) else 65535
        return bool(flags & 0x01), self.receive_maximum

    async def subscribe(self, filters: Sequence[str], qos: int = 1) -> bytes:
        """Subscribe and wait for the SUBACK; returns its reason codes."""
        packet_id = self.new_id()
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiters[packet_id] = waiter
        self.write(subscribe_packet(packet_id, filters, qos))
        codes = await waiter
        if any(code >= 0x80 for code in codes):
            raise MqttError(f"subscription refused: {list(codes)}")
        return codes

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Fire and forget: the PUBACK is only counted."""
        self.write(publish_packet(topic, payload, qos=qos, packet_id=self.new_id() if qos else 0,
                                  retain=retain))

    def ping(self) -> None:
        self.write(PINGREQ_PACKET)

    def disconnect(self) -> None:
        """A clean DISCONNECT (the broker then drops the Will) and close."""
        self.write(DISCONNECT_PACKET)
        self.close()

    def close(self) -> None:
        """Close the socket without DISCONNECT: the broker publishes the Will at once."""
        if self.transport is not None:
            self.transport.close()

    def freeze(self) -> None:
        """Vanish without a word: keep the socket open but never send or read again,
        as a node whose power or link is cut; only the keepalive timeout finds it."""
        self.frozen = True
        if self.transport is not None:
            self.transport.pause_reading()


async def open_connection(host: str, port: int, connect: bytes, *,
                          on_message: MessageHandler | None = None,
                          timeout_s: float = 30.0) -> MqttConnection:
    """Connect, send `connect` (a CONNECT packet) and wait for a successful CONNACK."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: MqttConnection(on_message=on_message), host, port),
        timeout_s)
    try:
        await asyncio.wait_for(protocol.handshake(connect), timeout_s)
    except BaseException:
        protocol.close()
        raise
    return protocol


class PublishPump:
    """Sends pre-built QoS 1 PUBLISH packets on one connection, keeping as many in
    flight as the broker's Receive Maximum allows (less `reserve`, left for other
    publishes on the same connection, such as a node's heartbeat), until every
    one is acknowledged. PUBACKs of those other publishes are not counted."""

    def __init__(self, connection: MqttConnection, packets: Sequence[PreparedPublish], *,
                 reserve: int = 0) -> None:
        self._connection = connection
        self._packets = packets
        self._next = 0
        self._in_flight: set[int] = set()
        self._window = max(1, connection.receive_maximum - reserve)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection.on_puback = self._acked

    def start(self) -> None:
        if not self._packets:
            self.done.set_result(None)
        self._fill()

    def _fill(self) -> None:
        connection, packets, in_flight = self._connection, self._packets, self._in_flight
        while len(in_flight) < self._window and self._next < len(packets):
            packet_id = connection.new_id()
            connection.write(packets[self._next].with_id(packet_id))
            self._next += 1
            in_flight.add(packet_id)

    def _acked(self, packet_id: int, _reason: int) -> None:
        if packet_id not in self._in_flight:
            return  # another publish on this connection
        self._in_flight.discard(packet_id)
        if self._next < len(self._packets):
            self._fill()
        elif not self._in_flight and not self.done.done():
            self.done.set_result(None)
