"""The topic table: every topic is built and parsed by `TopicTable`, and the two agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import ID_PATTERN, Channel, ParsedTopic, TopicError, TopicTable, is_valid_id
from schemas.events import EVENT_KINDS, EVENT_TYPES
from schemas.topics import CHANNELS, DEFAULT_PREFIX

PREFIXES = [pytest.param(DEFAULT_PREFIX, id="default"), pytest.param("acme/cctv/v2", id="custom")]
NODE = "site-1"
PLAIN_CHANNELS = [c for c in Channel if c is not Channel.EVENTS]


def every_topic() -> list[tuple[Channel, str | None]]:
    return [(c, None) for c in PLAIN_CHANNELS] + [(Channel.EVENTS, k) for k in EVENT_KINDS]


# --- the table itself matches DESIGN.md -------------------------------------------------


def test_default_prefix() -> None:
    assert DEFAULT_PREFIX == "cctv/v1"
    assert TopicTable().prefix == "cctv/v1"


def test_the_table_has_every_channel_of_the_design() -> None:
    assert {c.value for c in Channel} == {
        "schedules", "cameras", "commands", "acks", "status", "state", "heartbeat", "events",
        "replies",
    }
    assert set(CHANNELS) == set(Channel)
    assert all(spec.channel is channel for channel, spec in CHANNELS.items())


@pytest.mark.parametrize(
    ("channel", "to_node", "retained", "payload"),
    [
        (Channel.SCHEDULES, True, True, "ScheduleSet"),
        (Channel.CAMERAS, True, True, "CameraSet"),
        (Channel.COMMANDS, True, False, "Command"),
        (Channel.ACKS, True, False, "EventAck"),
        (Channel.STATUS, False, True, "NodeStatus"),
        (Channel.STATE, False, True, "ReportedState"),
        (Channel.HEARTBEAT, False, False, "Heartbeat"),
        (Channel.EVENTS, False, False, "Event"),
        (Channel.REPLIES, False, False, "CommandReply"),
    ],
    ids=lambda value: value.value if isinstance(value, Channel) else None,
)
def test_channel_spec_matches_design(
    channel: Channel, to_node: bool, retained: bool, payload: str
) -> None:
    spec = CHANNELS[channel]
    assert spec.to_node is to_node
    assert spec.retained is retained
    assert spec.payload == payload
    assert spec.qos == 1
    assert spec.summary


def test_event_kinds_are_the_parts_of_event_types() -> None:
    assert EVENT_KINDS == ("recording", "upload", "camera", "storage")
    assert {t.partition(".")[0] for t in EVENT_TYPES} == set(EVENT_KINDS)


# --- build and parse ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("channel", "kind"),
    [pytest.param(c, k, id=f"{c.value}/{k}" if k else c.value) for c, k in every_topic()],
)
def test_build_and_parse_round_trip(prefix: str, channel: Channel, kind: str | None) -> None:
    table = TopicTable(prefix)
    topic = table.topic(NODE, channel, kind)
    suffix = f"events/{kind}" if kind else channel.value
    assert topic == f"{prefix}/{NODE}/{suffix}"
    parsed = table.parse(topic)
    assert parsed == ParsedTopic(NODE, channel, kind)
    assert parsed.node_id == NODE
    assert parsed.channel is channel
    assert parsed.kind == kind


def test_parsed_topic_is_frozen_and_hashable() -> None:
    parsed = TopicTable().parse("cctv/v1/site-1/status")
    assert hash(parsed) == hash(ParsedTopic("site-1", Channel.STATUS))
    with pytest.raises(AttributeError):
        parsed.node_id = "site-2"  # type: ignore[misc]


def test_channel_is_a_str_enum() -> None:
    table = TopicTable()
    assert table.topic(NODE, Channel.HEARTBEAT) == "cctv/v1/site-1/heartbeat"
    assert f"{Channel.HEARTBEAT}" == "heartbeat"


@pytest.mark.parametrize(
    ("prefix", "topic"),
    [
        pytest.param(DEFAULT_PREFIX, "cctv/v2/site-1/status", id="other-version"),
        pytest.param(DEFAULT_PREFIX, "acme/cctv/v1/site-1/status", id="prefix-not-at-start"),
        pytest.param(DEFAULT_PREFIX, "/cctv/v1/site-1/status", id="leading-slash"),
        pytest.param(DEFAULT_PREFIX, "CCTV/v1/site-1/status", id="prefix-case"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1x/site-1/status", id="prefix-longer-level"),
        pytest.param(DEFAULT_PREFIX, "cctv/site-1/status", id="prefix-short"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1", id="prefix-only"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1", id="no-channel"),
        pytest.param(DEFAULT_PREFIX, "", id="empty"),
        pytest.param("acme/cctv/v2", "cctv/v1/site-1/status", id="default-on-custom-table"),
        pytest.param("acme/cctv/v2", "acme/cctv/site-1/status", id="custom-short"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/video", id="unknown-channel"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/Status", id="channel-case"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/", id="empty-channel"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/Site-1/status", id="node-uppercase"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1//status", id="node-empty"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/-site/status", id="node-leading-hyphen"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site_1/status", id="node-underscore"),
        pytest.param(DEFAULT_PREFIX, f"cctv/v1/{'a' * 64}/status", id="node-64-chars"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/../status", id="node-dot-dot"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/status/extra", id="extra-level"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/status/", id="trailing-slash"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/commands/c1", id="extra-level-commands"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events", id="events-without-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/", id="events-empty-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/motion", id="events-unknown-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/Recording", id="events-kind-case"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/recording.started",
                     id="events-type-not-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/recording/extra",
                     id="events-extra-level"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/+/status", id="wildcard-plus-node"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/#", id="wildcard-hash-node"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/#", id="wildcard-hash-channel"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/+", id="wildcard-plus-channel"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/+/events/#", id="wildcard-subscription"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/+", id="wildcard-plus-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/v1/site-1/events/#", id="wildcard-hash-kind"),
        pytest.param(DEFAULT_PREFIX, "cctv/+/site-1/status", id="wildcard-in-prefix"),
        pytest.param(DEFAULT_PREFIX, "$share/g/cctv/v1/site-1/status", id="shared-prefix"),
        pytest.param(DEFAULT_PREFIX, "$SYS/broker/uptime", id="sys-topic"),
    ],
)
def test_parse_rejects(prefix: str, topic: str) -> None:
    with pytest.raises(TopicError):
        TopicTable(prefix).parse(topic)


def test_topic_error_is_a_value_error_naming_the_topic() -> None:
    with pytest.raises(ValueError, match="cctv/v1/site-1/video"):
        TopicTable().parse("cctv/v1/site-1/video")


@pytest.mark.parametrize("kind", [None, "", "motion", "recording.started", "Recording", "#"])
def test_topic_refuses_events_without_a_valid_kind(kind: str | None) -> None:
    with pytest.raises(TopicError):
        TopicTable().topic(NODE, Channel.EVENTS, kind)


@pytest.mark.parametrize("channel", PLAIN_CHANNELS, ids=str)
def test_topic_refuses_a_kind_on_other_channels(channel: Channel) -> None:
    with pytest.raises(TopicError):
        TopicTable().topic(NODE, channel, "recording")


@pytest.mark.parametrize(
    "node_id", ["", "+", "#", "Site-1", "site/1", "..", "-site", "a" * 64, "site 1", "site-1\n"]
)
def test_topic_refuses_invalid_node_ids(node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        TopicTable().topic(node_id, Channel.STATUS)


@pytest.mark.parametrize(
    "prefix",
    ["", "/", "/cctv/v1", "cctv/v1/", "cctv//v1", "cctv/+/v1", "cctv/#", "cctv/v1/#",
     "$share/g/cctv", "$SYS", "cctv v1", "cctv/v1\n", "cctv/ü"],
)
def test_invalid_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        TopicTable(prefix)


@pytest.mark.parametrize("prefix", ["cctv/v1", "acme/cctv/v2", "cctv", "Site_A/cctv-test/v1"])
def test_valid_prefixes_are_accepted(prefix: str) -> None:
    table = TopicTable(prefix)
    assert table.parse(table.topic(NODE, Channel.STATUS)) == ParsedTopic(NODE, Channel.STATUS)


# --- subscriptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "channel", "node_id", "expected"),
    [
        pytest.param(DEFAULT_PREFIX, Channel.STATUS, "+", "cctv/v1/+/status", id="all-status"),
        pytest.param(DEFAULT_PREFIX, Channel.HEARTBEAT, "+", "cctv/v1/+/heartbeat",
                     id="all-heartbeat"),
        pytest.param(DEFAULT_PREFIX, Channel.STATE, "+", "cctv/v1/+/state", id="all-state"),
        pytest.param(DEFAULT_PREFIX, Channel.REPLIES, "+", "cctv/v1/+/replies", id="all-replies"),
        pytest.param(DEFAULT_PREFIX, Channel.EVENTS, "+", "cctv/v1/+/events/#", id="all-events"),
        pytest.param(DEFAULT_PREFIX, Channel.SCHEDULES, NODE, "cctv/v1/site-1/schedules",
                     id="node-schedules"),
        pytest.param(DEFAULT_PREFIX, Channel.CAMERAS, NODE, "cctv/v1/site-1/cameras",
                     id="node-cameras"),
        pytest.param(DEFAULT_PREFIX, Channel.COMMANDS, NODE, "cctv/v1/site-1/commands",
                     id="node-commands"),
        pytest.param(DEFAULT_PREFIX, Channel.ACKS, NODE, "cctv/v1/site-1/acks", id="node-acks"),
        pytest.param(DEFAULT_PREFIX, Channel.EVENTS, NODE, "cctv/v1/site-1/events/#",
                     id="node-events"),
        pytest.param("acme/cctv/v2", Channel.EVENTS, "+", "acme/cctv/v2/+/events/#",
                     id="custom-all-events"),
        pytest.param("acme/cctv/v2", Channel.COMMANDS, NODE, "acme/cctv/v2/site-1/commands",
                     id="custom-node-commands"),
    ],
)
def test_subscription(prefix: str, channel: Channel, node_id: str, expected: str) -> None:
    assert TopicTable(prefix).subscription(channel, node_id) == expected


def test_subscription_defaults_to_every_node() -> None:
    assert TopicTable().subscription(Channel.STATUS) == "cctv/v1/+/status"


@pytest.mark.parametrize("node_id", ["#", "", "Site-1", "site/1", "site-+"])
def test_subscription_refuses_invalid_node_ids(node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        TopicTable().subscription(Channel.STATUS, node_id)


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("channel", "kind"), every_topic(),
                         ids=lambda v: v.value if isinstance(v, Channel) else str(v))
def test_every_built_topic_matches_its_subscription(
    prefix: str, channel: Channel, kind: str | None
) -> None:
    table = TopicTable(prefix)
    topic = table.topic(NODE, channel, kind)
    for node_filter in ("+", NODE):
        assert _matches(table.subscription(channel, node_filter), topic)
    assert not _matches(table.subscription(channel, "site-2"), topic)
    for other in Channel:
        if other is not channel:
            assert not _matches(table.subscription(other), topic)


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (enough of it for these tests)."""
    levels, names = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(levels):
        if level == "#":
            return True
        if index >= len(names) or level not in ("+", names[index]):
            return False
    return len(levels) == len(names)


def test_shared_subscription() -> None:
    table = TopicTable()
    assert (table.shared("cctv-ingest", table.subscription(Channel.EVENTS))
            == "$share/cctv-ingest/cctv/v1/+/events/#")
    assert (TopicTable.shared("ingest-2", "acme/cctv/v2/+/heartbeat")
            == "$share/ingest-2/acme/cctv/v2/+/heartbeat")


@pytest.mark.parametrize("group", ["", "Cctv", "cctv/ingest", "+", "#", "a b"])
def test_shared_refuses_invalid_groups(group: str) -> None:
    with pytest.raises(ValueError, match="share group"):
        TopicTable.shared(group, "cctv/v1/+/events/#")


# --- properties --------------------------------------------------------------------------

NODE_IDS = st.from_regex(ID_PATTERN, fullmatch=True)
TOPICS = st.sampled_from(every_topic())


@settings(max_examples=300, deadline=None)
@given(node_id=NODE_IDS, topic=TOPICS, prefix=st.sampled_from([DEFAULT_PREFIX, "acme/cctv/v2"]))
def test_parse_inverts_topic(node_id: str, topic: tuple[Channel, str | None], prefix: str) -> None:
    channel, kind = topic
    table = TopicTable(prefix)
    built = table.topic(node_id, channel, kind)
    assert table.parse(built) == ParsedTopic(node_id, channel, kind)
    assert built.count("/") == prefix.count("/") + (3 if kind else 2)


@settings(max_examples=200, deadline=None)
@given(node_id=st.text(max_size=70).filter(lambda s: "/" not in s and not is_valid_id(s)),
       topic=TOPICS)
def test_parse_refuses_any_invalid_node_id(node_id: str, topic: tuple[Channel, str | None]) -> None:
    channel, kind = topic
    suffix = f"events/{kind}" if kind else channel.value
    with pytest.raises(TopicError):
        TopicTable().parse(f"cctv/v1/{node_id}/{suffix}")
