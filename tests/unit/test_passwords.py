"""broker.passwords without a broker: hash format, verification, file edits, name rules."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import stat
import time
from pathlib import Path

import pytest

from broker import passwords

HASH_RE = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")


def test_hash_has_mosquitto_passwd_2_format() -> None:
    encoded = passwords.hash_password("secret")
    assert HASH_RE.fullmatch(encoded), encoded
    _, kind, iterations, salt, digest = encoded.split("$")
    assert (kind, iterations) == ("7", "101")
    assert len(base64.b64decode(salt)) == 12
    assert len(base64.b64decode(digest)) == 64


def test_hash_is_pbkdf2_hmac_sha512_over_the_salt() -> None:
    salt = bytes(range(12))
    encoded = passwords.hash_password("secret", salt=salt)
    digest = hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101, 64)
    b64 = base64.b64encode
    assert encoded == f"$7$101${b64(salt).decode()}${b64(digest).decode()}"


def test_hashes_are_salted() -> None:
    assert passwords.hash_password("same") != passwords.hash_password("same")


def test_verify_accepts_the_password_and_rejects_others() -> None:
    encoded = passwords.hash_password("correct horse")
    assert passwords.verify_password("correct horse", encoded)
    assert not passwords.verify_password("correct horse ", encoded)
    assert not passwords.verify_password("", encoded)


def test_verify_reads_mosquitto_1x_sha512_hashes() -> None:
    salt = b"0123456789ab"
    digest = hashlib.sha512(b"old-pw" + salt).digest()
    encoded = f"$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert passwords.verify_password("old-pw", encoded)
    assert not passwords.verify_password("new-pw", encoded)


@pytest.mark.parametrize("encoded", ["", "plain", "$7$x$AAAA$AAAA", "$7$101$!!$AAAA", "$9$1$a$b"])
def test_verify_rejects_malformed_hashes(encoded: str) -> None:
    assert not passwords.verify_password("anything", encoded)


def test_generated_passwords_are_long_random_and_url_safe() -> None:
    generated = {passwords.generate_password() for _ in range(50)}
    assert len(generated) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", pw) for pw in generated)


@pytest.mark.parametrize(
    "name", ["", "Node-1", "-node", "node_1", "node.1", "node/1", "node+", "a#", "n" * 64, "né"]
)
def test_bad_names_are_rejected_with_the_name_in_the_error(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        passwords.validate_username(name)


@pytest.mark.parametrize("name", ["a", "0", "site-1", "n" * 63])
def test_good_names_pass(name: str) -> None:
    assert passwords.validate_username(name) == name
    assert passwords.validate_node_id(name) == name


@pytest.mark.parametrize("name", passwords.RESERVED_ACCOUNTS)
def test_reserved_accounts_are_not_node_ids(name: str) -> None:
    assert passwords.validate_username(name) == name
    with pytest.raises(ValueError, match="reserved"):
        passwords.validate_node_id(name)


def test_add_accounts_writes_one_verifiable_line_each(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    created = passwords.add_accounts(path, ["site-1", "site-2"])
    lines = path.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["site-1", "site-2"]
    stored = passwords.read_password_file(path)
    for username, password in created.items():
        assert HASH_RE.fullmatch(stored[username])
        assert passwords.verify_password(password, stored[username])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_replacing_keeps_order_comments_and_other_accounts(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# managed by cctv\n")
    first = passwords.add_accounts(path, ["a", "b", "c"])
    before = passwords.read_password_file(path)
    passwords.set_passwords(path, {"b": "new-b", "d": "pw-d"})
    after = passwords.read_password_file(path)
    assert path.read_text().splitlines()[0] == "# managed by cctv"
    assert passwords.list_accounts(path) == ["a", "b", "c", "d"]
    assert after["a"] == before["a"]
    assert after["c"] == before["c"]
    assert passwords.verify_password("new-b", after["b"])
    assert not passwords.verify_password(first["b"], after["b"])


def test_remove_accounts_returns_what_was_there(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    passwords.add_accounts(path, ["a", "b", "c"])
    assert passwords.remove_accounts(path, ["b", "zz"]) == ["b"]
    assert passwords.list_accounts(path) == ["a", "c"]
    assert passwords.remove_accounts(path, ["b"]) == []


def test_a_bad_name_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    passwords.add_accounts(path, ["a"])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="'Bad_Id'"):
        passwords.add_accounts(path, ["b", "Bad_Id"])
    assert path.read_bytes() == before


def test_missing_file_has_no_accounts(tmp_path: Path) -> None:
    assert passwords.list_accounts(tmp_path / "absent") == []


def test_malformed_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("a:$7$101$x$y\nno-colon-here\n")
    with pytest.raises(passwords.PasswordFileError, match=":2:"):
        passwords.list_accounts(path)


def test_thousands_of_accounts_in_one_call_are_fast(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    names = [f"node-{i:05d}" for i in range(3000)]
    started = time.perf_counter()
    created = passwords.add_accounts(path, names)
    elapsed = time.perf_counter() - started
    assert len(created) == 3000
    assert passwords.list_accounts(path) == names
    assert elapsed < 5.0, f"{elapsed:.2f}s for 3000 accounts"


def test_rewrite_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    passwords.add_accounts(path, ["a"])
    passwords.add_accounts(path, ["b"])
    passwords.remove_accounts(path, ["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".passwd.lock", "passwd"]


def test_signal_reload_sends_sighup_to_the_pid_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text("4242\n")
    assert passwords.signal_reload(pid_file) == 4242
    assert sent == [(4242, signal.SIGHUP)]


def test_signal_reload_without_a_broker_says_so(tmp_path: Path) -> None:
    with pytest.raises(passwords.BrokerNotRunningError, match="no broker pid file"):
        passwords.signal_reload(tmp_path / "absent.pid")
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid")
    with pytest.raises(passwords.BrokerNotRunningError, match="does not hold a pid"):
        passwords.signal_reload(garbage)
