"""Broker accounts: Mosquitto's password file, written the way mosquitto_passwd 2.0 writes it.

Each line is ``username:$7$101$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512
with 101 iterations over a 12-byte random salt, giving 64 bytes. Mosquitto
reads the file at start and again on SIGHUP (``signal_reload``), so accounts
change without dropping any connection.

Many accounts are added in one call (a fleet of thousands is provisioned at
once): the file is read once and written once, atomically (temporary file,
fsync, rename), under an exclusive lock so two provisioning runs cannot lose
each other's accounts. The file keeps its owner and group across rewrites (the
broker reads it as the ``mosquitto`` user) and has mode 0640.

This module must never log, print or return a password hash, and never log a
plain password; only ``add_accounts`` returns the passwords it generated, to
its caller.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

RESERVED_ACCOUNTS: Final = ("cctv-cloud", "cctv-operator")
"""Service accounts with fixed roles in the ACL; never valid as node ids."""

NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FILE_MODE: Final = 0o640

# mosquitto_passwd 2.0 (src/password_mosq.c): PW_SHA512_PBKDF2 = 7,
# PW_DEFAULT_ITERATIONS = 101, SALT_LEN = 12, hash length = SHA-512 digest size.
_PBKDF2_ID: Final = "7"
_SHA512_ID: Final = "6"  # mosquitto 1.x salted SHA-512; still read by 2.0
PBKDF2_ITERATIONS: Final = 101
SALT_BYTES: Final = 12
_HASH_BYTES: Final = 64


class PasswordFileError(ValueError):
    """The password file has a line Mosquitto would not accept."""


class BrokerNotRunningError(RuntimeError):
    """No running broker behind the pid file, so nothing was reloaded."""


def validate_username(username: str) -> str:
    """Return ``username`` if it is a valid account name, else raise ValueError naming it."""
    if not NAME_RE.fullmatch(username):
        raise ValueError(
            f"invalid account name {username!r}: must match {NAME_RE.pattern} "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    return username


def validate_node_id(node_id: str) -> str:
    """Like ``validate_username``, and also refuse the reserved service account names.

    A node called ``cctv-operator`` would share the operator's account, and the
    ACL's pattern rules would give the service accounts that node's topics.
    """
    validate_username(node_id)
    if node_id in RESERVED_ACCOUNTS:
        raise ValueError(f"invalid node id {node_id!r}: reserved for the service account")
    return node_id


def generate_password() -> str:
    """A fresh random password: 24 bytes of entropy, URL-safe (fits in an mqtt:// URL)."""
    return secrets.token_urlsafe(24)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """Encode ``password`` as mosquitto_passwd 2.0 does: ``$7$<iterations>$<salt>$<hash>``."""
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return f"${_PBKDF2_ID}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches an encoded hash ($7$ PBKDF2 or Mosquitto 1.x $6$)."""
    parts = encoded.split("$")
    try:
        if len(parts) == 5 and parts[0] == "" and parts[1] == _PBKDF2_ID:
            iterations = int(parts[2])
            salt = base64.b64decode(parts[3], validate=True)
            expected = base64.b64decode(parts[4], validate=True)
            actual = hashlib.pbkdf2_hmac(
                "sha512", password.encode("utf-8"), salt, iterations, len(expected)
            )
        elif len(parts) == 4 and parts[0] == "" and parts[1] == _SHA512_ID:
            salt = base64.b64decode(parts[2], validate=True)
            expected = base64.b64decode(parts[3], validate=True)
            actual = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except ValueError:  # bad base64 or iteration count: not a hash we can match
        return False
    return hmac.compare_digest(actual, expected)


# --- the file -----------------------------------------------------------------
#
# Kept as its lines, so comments and the order of accounts survive a rewrite;
# a user line is replaced in place and new accounts are appended.


def _parse(text: str, path: Path) -> tuple[list[str], dict[str, int]]:
    lines = text.splitlines()
    index: dict[str, int] = {}
    for number, line in enumerate(lines):
        if not line.strip() or line.startswith("#"):
            continue
        username, sep, encoded = line.partition(":")
        if not sep or not username or not encoded:
            raise PasswordFileError(f"{path}:{number + 1}: not a 'username:hash' line")
        index[username] = number
    return lines, index


def _read_lines(path: Path) -> tuple[list[str], dict[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], {}
    return _parse(text, path)


def read_password_file(path: Path) -> dict[str, str]:
    """Map each username in the file to its encoded hash (for verification, never for display)."""
    lines, index = _read_lines(path)
    return {username: lines[number].partition(":")[2] for username, number in index.items()}


def list_accounts(path: Path) -> list[str]:
    """Usernames in the file, in file order. A missing file has none."""
    _, index = _read_lines(path)
    return list(index)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # A sidecar lock file rather than the password file itself: the password
    # file is replaced by rename, so a lock on it would guard a stale inode.
    lock_path = path.with_name(f".{path.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(path: Path, lines: list[str]) -> None:
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    try:
        st = path.stat()
        owner: tuple[int, int] | None = (st.st_uid, st.st_gid)
    except FileNotFoundError:
        owner = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            # The broker reads the file as its own user: a rewrite by root must
            # not take that access away (Mosquitto exits with code 13 on start,
            # or keeps the old accounts on reload, if it cannot read it).
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                try:
                    os.fchown(handle.fileno(), *owner)
                except PermissionError:
                    logger.warning(
                        "broker.passwords.owner_not_kept path=%s uid=%d gid=%d",
                        path,
                        owner[0],
                        owner[1],
                    )
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # Make the rename itself durable: accounts printed to the operator must
    # still be there after a power cut.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def set_passwords(path: Path, credentials: Mapping[str, str]) -> None:
    """Add or replace accounts with the given plain passwords, in one read and one write.

    Every name is validated before the file is touched, so a bad id leaves the
    file unchanged.
    """
    for username in credentials:
        validate_username(username)
    hashed = {username: hash_password(password) for username, password in credentials.items()}
    with _locked(path):
        lines, index = _read_lines(path)
        added = 0
        for username, encoded in hashed.items():
            line = f"{username}:{encoded}"
            if username in index:
                lines[index[username]] = line
            else:
                index[username] = len(lines)
                lines.append(line)
                added += 1
        _write_atomically(path, lines)
    logger.info(
        "broker.accounts.written path=%s added=%d replaced=%d",
        path,
        added,
        len(hashed) - added,
    )


def add_accounts(path: Path, usernames: Iterable[str]) -> dict[str, str]:
    """Create or replace accounts with fresh generated passwords; returns username → password.

    The returned passwords exist nowhere else (the file holds only hashes):
    the caller hands them over once, e.g. in the node's env file.
    """
    credentials = {validate_username(username): generate_password() for username in usernames}
    set_passwords(path, credentials)
    return credentials


def remove_accounts(path: Path, usernames: Iterable[str]) -> list[str]:
    """Remove accounts; returns the names that were present. Absent names are not an error."""
    wanted = {validate_username(username) for username in usernames}
    with _locked(path):
        lines, index = _read_lines(path)
        removed = [username for username in index if username in wanted]
        if removed:
            drop = {index[username] for username in removed}
            _write_atomically(path, [line for n, line in enumerate(lines) if n not in drop])
    logger.info("broker.accounts.removed path=%s removed=%d", path, len(removed))
    return removed


def signal_reload(pid_file: Path) -> int:
    """Send SIGHUP to the Mosquitto whose pid is in ``pid_file``; returns that pid.

    Mosquitto then re-reads its password and ACL files; existing connections stay.
    """
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except FileNotFoundError as exc:
        raise BrokerNotRunningError(f"no broker pid file at {pid_file}") from exc
    except ValueError as exc:
        raise BrokerNotRunningError(f"broker pid file {pid_file} does not hold a pid") from exc
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise BrokerNotRunningError(f"no process {pid} (from {pid_file})") from exc
    logger.info("broker.reload_signalled pid=%d pid_file=%s", pid, pid_file)
    return pid
