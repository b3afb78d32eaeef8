"""Mosquitto ACL semantics of broker.acl_rules, against the project's own broker/acl.

The ACL is the one the production broker loads, rendered with the default
prefix exactly as the launchers render it; the expectations are DESIGN.md's
"Accounts and ACL". The parser and matching edge cases follow Mosquitto 2.0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from broker.acl_rules import AclParseError, AclRules, topic_matches
from broker.runtime_config import render_acl

ACL_TEMPLATE = Path(__file__).resolve().parents[2] / "broker" / "acl"
P = "cctv/v1"
A, B = "site-a", "site-b"
CLOUD, OPERATOR = "cctv-cloud", "cctv-operator"


@pytest.fixture(scope="module")
def acl() -> AclRules:
    return AclRules.parse(render_acl(ACL_TEMPLATE.read_text(encoding="utf-8")))


def node_may(acl: AclRules, node: str, topic: str, access: str) -> bool:
    # A node's username and client id are both its node_id (DESIGN.md).
    assert access in ("read", "write")
    return acl.allows(node, node, topic, "read" if access == "read" else "write")


# --- nodes ---------------------------------------------------------------------------


REPORTS = (
    "events/recording",
    "events/upload",
    "events/camera",
    "events/storage",
    "heartbeat",
    "status",
    "state",
    "replies",
)


@pytest.mark.parametrize("suffix", REPORTS)
def test_node_writes_its_own_reports(acl: AclRules, suffix: str) -> None:
    assert node_may(acl, A, f"{P}/{A}/{suffix}", "write")
    assert not node_may(acl, A, f"{P}/{B}/{suffix}", "write")


@pytest.mark.parametrize("suffix", ["schedules", "cameras", "commands", "acks"])
def test_node_reads_but_never_writes_its_own_desired_state_and_commands(
    acl: AclRules, suffix: str
) -> None:
    assert node_may(acl, A, f"{P}/{A}/{suffix}", "read")
    assert not node_may(acl, A, f"{P}/{A}/{suffix}", "write")


@pytest.mark.parametrize("suffix", ["schedules", "cameras", "commands", "acks", "status"])
def test_node_reads_nothing_of_another_node(acl: AclRules, suffix: str) -> None:
    assert not node_may(acl, A, f"{P}/{B}/{suffix}", "read")


@pytest.mark.parametrize(
    "topic",
    [
        f"{P}/{A}/other",  # not in the contract
        f"{P}/{A}",  # the subtree's root itself
        f"cctv/v2/{A}/heartbeat",  # another prefix
        f"{P}/{A}/heartbeat/extra",
    ],
)
def test_node_writes_nothing_outside_its_reports(acl: AclRules, topic: str) -> None:
    assert not node_may(acl, A, topic, "write")


def test_events_wildcard_includes_its_parent_level_as_in_mosquitto(acl: AclRules) -> None:
    # MQTT's '#' matches the level above it, so events/# admits a bare "events"
    # topic, in Mosquitto as here; the cloud rejects an event on such a topic.
    assert node_may(acl, A, f"{P}/{A}/events", "write")
    assert not node_may(acl, A, f"{P}/{B}/events", "write")


def test_node_rules_follow_the_username_not_the_client_id(acl: AclRules) -> None:
    # %u is the authenticated username: a client id naming another node gains nothing.
    assert not acl.allows(A, B, f"{P}/{B}/heartbeat", "write")
    assert acl.allows(A, B, f"{P}/{A}/heartbeat", "write")


def test_node_cannot_read_its_own_reports(acl: AclRules) -> None:
    # Writing a topic does not imply reading it: only the cloud reads reports.
    assert not node_may(acl, A, f"{P}/{A}/events/recording", "read")
    assert not node_may(acl, A, f"{P}/{A}/heartbeat", "read")


# --- service accounts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    [
        f"{P}/{A}/schedules",
        f"{P}/{B}/cameras",
        f"{P}/{A}/events/recording",
        f"{P}/{B}/status",
        f"{P}/anything/deeper/still",
        P,  # '#' matches its parent level
    ],
)
def test_cloud_reads_and_writes_everything_under_the_prefix(acl: AclRules, topic: str) -> None:
    assert acl.allows(CLOUD, "cloud-1", topic, "read")
    assert acl.allows(CLOUD, "cloud-1", topic, "write")


@pytest.mark.parametrize("topic", ["cctv/v2/x", "other/topic", "$SYS/broker/uptime", "cctv"])
def test_cloud_has_nothing_outside_the_prefix(acl: AclRules, topic: str) -> None:
    assert not acl.allows(CLOUD, "cloud-1", topic, "read")
    assert not acl.allows(CLOUD, "cloud-1", topic, "write")


def test_operator_writes_commands_and_reads_replies_and_status_only(acl: AclRules) -> None:
    for node in (A, B):
        assert acl.allows(OPERATOR, "cli-1", f"{P}/{node}/commands", "write")
        assert acl.allows(OPERATOR, "cli-1", f"{P}/{node}/replies", "read")
        assert acl.allows(OPERATOR, "cli-1", f"{P}/{node}/status", "read")
        assert not acl.allows(OPERATOR, "cli-1", f"{P}/{node}/commands", "read")
        for suffix in ("schedules", "cameras", "acks", "state", "heartbeat", "events/recording"):
            assert not acl.allows(OPERATOR, "cli-1", f"{P}/{node}/{suffix}", "read"), suffix
            assert not acl.allows(OPERATOR, "cli-1", f"{P}/{node}/{suffix}", "write"), suffix
        for suffix in ("replies", "status"):
            assert not acl.allows(OPERATOR, "cli-1", f"{P}/{node}/{suffix}", "write"), suffix


def test_service_accounts_get_node_rights_only_under_their_own_reserved_names(
    acl: AclRules,
) -> None:
    # The patterns apply to every user (the ACL file's comment): harmless only
    # because no node may be called cctv-operator or cctv-cloud.
    assert acl.allows(OPERATOR, "cli-1", f"{P}/{OPERATOR}/heartbeat", "write")
    assert not acl.allows(OPERATOR, "cli-1", f"{P}/{A}/heartbeat", "write")


def test_anonymous_and_unusable_identities_get_nothing(acl: AclRules) -> None:
    assert not acl.allows(None, "anon-1", f"{P}/{A}/schedules", "read")
    assert not acl.allows(None, A, f"{P}/{A}/heartbeat", "write")
    assert not acl.allows(A, None, f"{P}/{A}/heartbeat", "write")  # patterns need a client id
    # A wildcard or separator in a name would widen the pattern or leave the subtree.
    for username in ("+", "#", f"{A}/heartbeat", "a+b"):
        assert not acl.allows(username, "c1", f"{P}/{A}/heartbeat", "write"), username
    assert not acl.allows(A, "c/1", f"{P}/{A}/heartbeat", "write")
    # The cloud's own rules are consulted before the patterns and still hold.
    assert acl.allows(CLOUD, "cloud/1", f"{P}/{A}/schedules", "write")


def test_rendering_with_another_prefix_moves_every_right(acl: AclRules) -> None:
    moved = AclRules.parse(render_acl(ACL_TEMPLATE.read_text(encoding="utf-8"), "acme/cctv"))
    assert moved.allows(A, A, f"acme/cctv/{A}/heartbeat", "write")
    assert not moved.allows(A, A, f"{P}/{A}/heartbeat", "write")
    assert moved.allows(CLOUD, "c", f"acme/cctv/{B}/schedules", "write")
    assert not moved.allows(CLOUD, "c", f"{P}/{B}/schedules", "write")
    assert acl != moved


# --- subscriptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic_filter", [f"{P}/{B}/schedules", f"{P}/+/schedules", "#", "$SYS/#", f"{P}/{A}/acks"]
)
def test_any_valid_filter_may_be_subscribed_delivery_decides(
    acl: AclRules, topic_filter: str
) -> None:
    # Mosquitto's ACL file grants every subscription; what arrives is filtered
    # per message by read access to the concrete topic.
    assert acl.may_subscribe(A, A, topic_filter)
    assert acl.allows(A, A, f"{P}/{A}/schedules", "read")
    assert not acl.allows(A, A, f"{P}/{B}/schedules", "read")


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a/b#", "a+/b", "#/a", "a/\0"])
def test_invalid_filters_may_not_be_subscribed(acl: AclRules, topic_filter: str) -> None:
    assert not acl.may_subscribe(CLOUD, "c", topic_filter)


# --- MQTT matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/", False),
        ("a/b", "A/b", False),  # case-sensitive
        ("+", "a", True),
        ("+", "a/b", False),
        ("+", "/a", False),  # a leading '/' makes an empty first level
        ("+/+", "/a", True),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("a/+", "a", False),
        ("a/+/c", "a/b/c", True),
        ("#", "a", True),
        ("#", "a/b/c", True),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("+/#", "a", True),
        # $-topics: never matched by a leading wildcard, only by a filter starting with '$'.
        ("#", "$SYS/broker/uptime", False),
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("$SYS/+/uptime", "$SYS/broker/uptime", True),
        ("$SYS/#", "SYS/broker", False),
        # Invalid on either side never matches.
        ("a/#/b", "a/x/b", False),
        ("a/b+", "a/b+", False),
        ("#", "a/+", False),
        ("#", "", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_rules_on_sys_topics_need_a_dollar_filter() -> None:
    rules = AclRules.parse("user admin\ntopic read #\ntopic read $SYS/broker/#\n")
    assert rules.allows("admin", "c", "anything/at/all", "read")
    assert rules.allows("admin", "c", "$SYS/broker/uptime", "read")
    assert not rules.allows("admin", "c", "$SYS/other", "read")


def test_wildcards_in_a_concrete_topic_are_refused(acl: AclRules) -> None:
    assert not acl.allows(CLOUD, "c", f"{P}/+/schedules", "write")
    assert not acl.allows(CLOUD, "c", f"{P}/#", "read")


# --- parsing and precedence (Mosquitto 2.0 aclfile__parse / acl_check_default) ---------------


def test_deny_wins_in_its_list_whatever_the_order() -> None:
    rules = AclRules.parse(
        "user u\ntopic readwrite a/#\ntopic deny a/secret\npattern read p/%u/#\n"
        "pattern deny p/%u/private\n"
    )
    assert rules.allows("u", "c", "a/open", "write")
    assert not rules.allows("u", "c", "a/secret", "read")
    assert not rules.allows("u", "c", "a/secret", "write")
    assert rules.allows("u", "c", "p/u/x", "read")
    assert not rules.allows("u", "c", "p/u/private", "read")


def test_user_rules_decide_before_patterns() -> None:
    rules = AclRules.parse(
        "user u\ntopic read x/u/granted\ntopic deny x/u/denied\n"
        "pattern deny x/%u/granted\npattern read x/%u/#\n"
    )
    assert rules.allows("u", "c", "x/u/granted", "read")  # a user grant beats a pattern deny
    assert not rules.allows("u", "c", "x/u/denied", "read")  # a user deny beats a pattern grant
    assert rules.allows("u", "c", "x/u/other", "read")
    assert rules.allows("v", "c", "x/v/other", "read")
    assert not rules.allows("v", "c", "x/v/granted", "read")  # the pattern deny applies to v


def test_a_matching_rule_without_the_access_does_not_stop_the_search() -> None:
    rules = AclRules.parse("user u\ntopic read a/#\ntopic write a/b\n")
    assert rules.allows("u", "c", "a/b", "write")
    assert not rules.allows("u", "c", "a/c", "write")


def test_sections_anonymous_rules_merging_and_default_access() -> None:
    rules = AclRules.parse(
        "# comment in the first column\n"
        "\n"
        "topic read public/#\n"  # before any user line: anonymous clients
        "user u\n"
        "topic a/b\n"  # no access word: read and write
        "user v\n"
        "topic read v/only\n"
        "user u\n"  # a repeated section adds to the first
        "topic read more/for/u\n"
        "topic write  spaced  topic/x  \n"  # the topic is the rest of the line
    )
    assert rules.allows(None, "c", "public/x", "read")
    assert not rules.allows("u", "c", "public/x", "read")  # named users do not inherit them
    assert rules.allows("u", "c", "a/b", "read")
    assert rules.allows("u", "c", "a/b", "write")
    assert rules.allows("u", "c", "more/for/u", "read")
    assert rules.allows("u", "c", "spaced  topic/x", "write")
    assert not rules.allows("v", "c", "a/b", "read")
    assert rules.allows("v", "c", "v/only", "read")


def test_pattern_substitution() -> None:
    rules = AclRules.parse("pattern write dev/%c/out\npattern read users/%u/in\n")
    assert rules.allows("u", "client-1", "dev/client-1/out", "write")
    assert rules.allows(None, "client-1", "dev/client-1/out", "write")  # %c needs no username
    assert rules.allows("u", "client-1", "users/u/in", "read")
    assert not rules.allows(None, "client-1", "users/%u/in", "read")  # %u rules skip anonymous
    # One pass: a substituted value is not substituted again.
    assert rules.allows("u", "%u", "dev/%u/out", "write")


def test_allows_rejects_an_unknown_access(acl: AclRules) -> None:
    with pytest.raises(ValueError, match="access"):
        acl.allows(CLOUD, "c", f"{P}/x", "readwrite")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("topic\n", "without a topic"),
        ("user\n", "without a username"),
        ("topic rw a/b\n", "invalid access"),
        ("topic read a/#/b\n", "invalid topic filter"),
        ("pattern read a/%u+\n", "invalid topic filter"),
        ("  # an indented comment is a bad line to Mosquitto\n", "line 1"),
        ("user u\nallow read a/b\n", "line 2"),
        ("topic\tread\ta/b\n", "line 1"),  # Mosquitto splits on spaces only
    ],
)
def test_lines_mosquitto_refuses_are_errors(text: str, message: str) -> None:
    with pytest.raises(AclParseError, match=message):
        AclRules.parse(text)


def test_rules_are_immutable(acl: AclRules) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        acl.patterns = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        acl.users[A] = ()  # type: ignore[index]


def test_the_project_acl_has_no_anonymous_rules(acl: AclRules) -> None:
    assert None not in acl.users
    assert set(acl.users) == {CLOUD, OPERATOR}
