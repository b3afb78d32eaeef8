"""What a locally run broker is configured with: the ACL under a topic prefix, and the
runtime ``mosquitto.conf`` rewritten for its run dir.

Pure text in, text out: ``render_acl`` moves the ``cctv/v1`` topics of the
project's ``broker/acl`` under another prefix, and ``render_runtime_config``
keeps every setting of the production ``mosquitto.conf`` but the ones that name
a place on this machine (listener ports and bind address,
persistence_location, password_file, acl_file, pid_file, log_dest, the TLS
file paths and ``user``), which it points into one run dir.

This module must never read or write a file, and never change a setting that
is not about where the broker runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from broker.certs import TlsFiles

logger = logging.getLogger(__name__)

DEFAULT_TOPIC_PREFIX: Final = "cctv/v1"
ACL_TEMPLATE: Final = Path(__file__).with_name("acl")
"""The project's ACL, with its topics under ``DEFAULT_TOPIC_PREFIX``."""

# Directives naming a place on this machine; replaced, never copied. include_dir
# would pull in the host's own /etc/mosquitto/conf.d; port/bind_* configure the
# legacy default listener, which would be a second, unplanned one.
_LOCATION_DIRECTIVES = frozenset(
    {
        "acl_file",
        "bind_address",
        "bind_interface",
        "include_dir",
        "log_dest",
        "password_file",
        "persistence_location",
        "pid_file",
        "port",
        "psk_file",
        "user",
    }
)
_TLS_PATH_DIRECTIVES = frozenset(
    {"cafile", "capath", "certfile", "keyfile", "crlfile", "dhparamfile"}
)
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def render_acl(template: str, topic_prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """The ACL with its ``cctv/v1`` topics moved under ``topic_prefix``."""
    if not _PREFIX_RE.fullmatch(topic_prefix):
        raise ValueError(
            f"invalid topic prefix {topic_prefix!r}: '/'-separated non-empty levels "
            "without wildcards, '%' or spaces"
        )
    out = []
    for line in template.splitlines():
        words = line.split()
        if words and words[0] in ("topic", "pattern"):
            topic = words[-1]
            if topic == DEFAULT_TOPIC_PREFIX or topic.startswith(f"{DEFAULT_TOPIC_PREFIX}/"):
                words[-1] = topic_prefix + topic[len(DEFAULT_TOPIC_PREFIX) :]
            out.append(" ".join(words))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RuntimePaths:
    """Where the runtime config points every location-specific directive."""

    run_dir: Path
    password_file: Path
    acl_file: Path
    pid_file: Path
    log_file: Path
    tls: TlsFiles | None


def _directive(line: str) -> str:
    return line.split(maxsplit=1)[0]


def _split_blocks(source: str) -> tuple[list[str], list[list[str]]]:
    preamble: list[str] = []
    listeners: list[list[str]] = []
    for raw in source.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if _directive(line) == "listener":
            listeners.append([line])
        elif listeners:
            listeners[-1].append(line)
        else:
            preamble.append(line)
    return preamble, listeners


def render_runtime_config(
    source: str,
    paths: RuntimePaths,
    *,
    port: int,
    tls_port: int | None,
    bind: str,
    run_as: str | None,
) -> str:
    """Rewrite the location-specific directives of ``source``; keep every other setting.

    The first plain listener moves to ``bind:port`` and the first TLS listener
    (one with a certfile) to ``bind:tls_port`` with the run dir's TLS files; it
    is dropped when ``tls_port`` is None, and so are any other listeners.
    """
    preamble, listeners = _split_blocks(source)
    keep = [line for line in preamble if _directive(line) not in _LOCATION_DIRECTIVES]
    # Before the first listener, so they stay global even if the source ever
    # switches per_listener_settings on.
    keep += [
        f"persistence_location {paths.run_dir}/",
        f"password_file {paths.password_file}",
        f"acl_file {paths.acl_file}",
        f"pid_file {paths.pid_file}",
        f"log_dest file {paths.log_file}",
    ]
    if run_as is not None:
        keep.append(f"user {run_as}")
    plain_done = tls_done = False
    for block in listeners:
        is_tls = any(_directive(line) == "certfile" for line in block[1:])
        body = [line for line in block[1:] if _directive(line) not in _LOCATION_DIRECTIVES]
        if is_tls and not tls_done and tls_port is not None and paths.tls is not None:
            tls_done = True
            body = [line for line in body if _directive(line) not in _TLS_PATH_DIRECTIVES]
            keep.append(f"listener {tls_port} {bind}")
            keep += body
            keep += [
                f"cafile {paths.tls.ca_file}",
                f"certfile {paths.tls.cert_file}",
                f"keyfile {paths.tls.key_file}",
            ]
        elif not is_tls and not plain_done:
            plain_done = True
            keep.append(f"listener {port} {bind}")
            keep += body
        else:
            logger.debug("broker.runtime_config.listener_dropped line=%s", block[0])
    if not plain_done:
        raise ValueError("mosquitto.conf has no plain (non-TLS) listener to run on")
    if tls_port is not None and not tls_done:
        raise ValueError("a TLS port was asked for but mosquitto.conf has no TLS listener")
    header = "# Generated by broker/launcher.py from the project's mosquitto.conf; do not edit."
    return "\n".join([header, *keep]) + "\n"
