"""Mosquitto's ``acl_file`` semantics as a pure evaluator, for brokers that are not Mosquitto.

The embedded development broker (``broker/embedded.py``) enforces the
project's own ``broker/acl`` with this module, so a demo without Mosquitto
grants exactly what production grants. It follows Mosquitto 2.0's default
ACL check (``src/security_default.c``):

* ``topic`` lines before the first ``user`` line apply to anonymous clients;
  after ``user NAME`` they apply to that username (repeated sections merge).
  ``pattern`` lines apply to every client, with ``%u`` replaced by the
  username and ``%c`` by the client id; a ``%u`` pattern never applies to a
  client without a username.
* The access word is ``read``, ``write``, ``readwrite`` (the default when it
  is omitted) or ``deny``. The topic is the rest of the line, so it may hold
  spaces. A ``#`` in the first column starts a comment; any other line that
  is not blank, ``user``, ``topic`` or ``pattern`` is an error, as it stops
  Mosquitto from starting.
* A check looks at the user's own rules first, then at the patterns. In each
  list a matching ``deny`` refuses, whatever else matches; otherwise the first
  matching rule that grants the access allows it. Nothing matching is a refusal.
* Before the patterns are consulted, a username or client id holding ``+``,
  ``#`` or ``/`` is refused everything the patterns would grant: substituted
  into a filter it would widen it or climb out of the client's own subtree.
  (Mosquitto 1.x and 2.1 refuse all three; 2.0 only ``+`` and ``#``. The
  stricter rule costs nothing here, as ``broker.passwords`` never creates such
  a name.)
* Topic matching is MQTT's: ``+`` is one level, ``#`` the rest (its parent
  included), and a filter matches a ``$`` topic only if it starts with ``$``
  itself, so ``#`` and ``+/...`` never reach ``$SYS``.
* Subscribing is never refused by Mosquitto's ACL file: any valid filter is
  granted, and each message is delivered only if the subscriber may ``read``
  its concrete topic. ``may_subscribe`` says the first, ``allows(..., "read")``
  the second; a broker must apply the read check to every message it
  delivers, retained ones included.

This module must never do I/O, log, or decide anything on a guess: an input it
cannot judge (an invalid topic, an unknown access) is refused or rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, get_args

Access = Literal["read", "write"]
"""What a client does with a concrete topic: receive a message on it, or publish to it."""

RuleAccess = Literal["read", "write", "readwrite", "deny"]

# Spelled out rather than cast: the file's word becomes a RuleAccess only by lookup.
_RULE_ACCESS: Final[Mapping[str, RuleAccess]] = MappingProxyType(
    {word: word for word in get_args(RuleAccess)}
)
_GRANTS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "read": frozenset({"read"}),
        "write": frozenset({"write"}),
        "readwrite": frozenset({"read", "write"}),
        "deny": frozenset(),
    }
)
# Characters that must not be substituted into a pattern (see the module docstring).
_UNSAFE_IN_PATTERN: Final = frozenset("+#/")
_SUBSTITUTION: Final = re.compile(r"%[cu]")
_MAX_TOPIC_BYTES: Final = 65535  # MQTT's UTF-8 string length limit


class AclParseError(ValueError):
    """The ACL text has a line Mosquitto would refuse to start with."""


# --- topics and filters (MQTT 3.1.1 section 4.7) -------------------------------------


def _fits_mqtt_string(text: str) -> bool:
    return bool(text) and "\0" not in text and len(text.encode("utf-8")) <= _MAX_TOPIC_BYTES


def is_valid_topic(topic: str) -> bool:
    """True for a topic a client may publish to: non-empty, no wildcard characters."""
    return _fits_mqtt_string(topic) and "+" not in topic and "#" not in topic


def is_valid_filter(topic_filter: str) -> bool:
    """True for a subscription filter: ``+`` and ``#`` fill a whole level, ``#`` only the last."""
    if not _fits_mqtt_string(topic_filter):
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter``; False when either is not valid."""
    if not is_valid_filter(topic_filter) or not is_valid_topic(topic):
        return False
    # MQTT 4.7.2: wildcards at the first level do not match $-topics. Mosquitto
    # applies it to any pair whose first characters disagree on '$'.
    if topic_filter.startswith("$") != topic.startswith("$"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True  # the rest, and the parent level itself ("a/#" matches "a")
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AclRule:
    """One ``topic`` or ``pattern`` line: an access and a filter (a template, for patterns)."""

    access: RuleAccess
    topic_filter: str

    @property
    def denies(self) -> bool:
        return self.access == "deny"

    def grants(self, access: Access) -> bool:
        return access in _GRANTS[self.access]


def _decide(
    rules: tuple[AclRule, ...], filters: list[str], topic: str, access: Access
) -> bool | None:
    """True/False when these rules decide, None when none of them matches usefully."""
    matching = [rule for rule, f in zip(rules, filters, strict=True) if topic_matches(f, topic)]
    # Mosquitto keeps deny rules at the head of each list: a matching deny wins
    # over any grant in the same list, whatever the order in the file.
    if any(rule.denies for rule in matching):
        return False
    if any(rule.grants(access) for rule in matching):
        return True
    return None


def _substitute(template: str, username: str | None, client_id: str) -> str:
    # One left-to-right pass, like Mosquitto: a substituted value is never
    # scanned again, so a '%u' inside a client id stays literal.
    def replace(match: re.Match[str]) -> str:
        if match.group() == "%c":
            return client_id
        return username if username is not None else match.group()

    return _SUBSTITUTION.sub(replace, template)


@dataclass(frozen=True)
class AclRules:
    """A parsed ACL file: per-username rules (None = anonymous) and patterns for everyone."""

    users: Mapping[str | None, tuple[AclRule, ...]]
    patterns: tuple[AclRule, ...]

    @classmethod
    def parse(cls, text: str) -> AclRules:
        """Parse ACL text as Mosquitto 2.0 does; raise AclParseError naming the bad line."""
        users: dict[str | None, list[AclRule]] = {}
        patterns: list[AclRule] = []
        user: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            # Mosquitto tokenises on spaces only (strtok " "), so a tab inside
            # a keyword makes the line invalid there too.
            keyword, _, rest = line.lstrip(" ").partition(" ")
            rest = rest.lstrip(" ")
            if keyword == "user":
                if not rest.strip():
                    raise AclParseError(f"line {number}: 'user' without a username")
                user = rest.strip()
            elif keyword in ("topic", "pattern"):
                rule = _parse_rule(keyword, rest, number)
                if keyword == "topic":
                    users.setdefault(user, []).append(rule)
                else:
                    patterns.append(rule)
            else:
                raise AclParseError(f"line {number}: not a user, topic or pattern line: {line!r}")
        return cls(
            users=MappingProxyType({name: tuple(rules) for name, rules in users.items()}),
            patterns=tuple(patterns),
        )

    def allows(
        self, username: str | None, client_id: str | None, topic: str, access: Access
    ) -> bool:
        """Whether this client may ``read`` (receive) or ``write`` (publish) concrete ``topic``."""
        if access not in ("read", "write"):
            raise ValueError(f"access must be 'read' or 'write', not {access!r}")
        if not is_valid_topic(topic):
            return False
        own = self.users.get(username, ())
        decided = _decide(own, [rule.topic_filter for rule in own], topic, access)
        if decided is not None:
            return decided
        if not self.patterns or not client_id:
            return False
        if _UNSAFE_IN_PATTERN & set(client_id) or (
            username is not None and _UNSAFE_IN_PATTERN & set(username)
        ):
            return False
        applicable = tuple(
            rule for rule in self.patterns if username is not None or "%u" not in rule.topic_filter
        )
        filters = [_substitute(rule.topic_filter, username, client_id) for rule in applicable]
        return _decide(applicable, filters, topic, access) is True

    def may_subscribe(self, username: str | None, client_id: str | None, topic_filter: str) -> bool:
        """Whether a SUBSCRIBE to ``topic_filter`` is granted: yes for any valid filter.

        Mosquitto's ACL file does not judge subscriptions (``security_default.c``
        grants MOSQ_ACL_SUBSCRIBE outright); it filters what is delivered, one
        message at a time, with ``allows(username, client_id, topic, "read")``.
        A subscription to another node's topics is therefore granted and
        delivers nothing. The identity parameters are kept so a broker calls
        this the same way as ``allows``.
        """
        del username, client_id  # not consulted, by Mosquitto's design (see above)
        return is_valid_filter(topic_filter)


def _parse_rule(keyword: str, rest: str, number: int) -> AclRule:
    first, _, remainder = rest.partition(" ")
    remainder = remainder.strip()
    if not first:
        raise AclParseError(f"line {number}: '{keyword}' without a topic")
    if remainder:
        access_word, topic_filter = first, remainder
    else:
        # "topic foo/bar": a lone word is the topic, with read and write access.
        access_word, topic_filter = "readwrite", first
    access = _RULE_ACCESS.get(access_word)
    if access is None:
        raise AclParseError(
            f"line {number}: invalid access {access_word!r} "
            "(expected read, write, readwrite or deny)"
        )
    if not is_valid_filter(topic_filter):
        raise AclParseError(f"line {number}: invalid topic filter {topic_filter!r}")
    return AclRule(access=access, topic_filter=topic_filter)
