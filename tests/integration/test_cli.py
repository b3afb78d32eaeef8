"""The `cctv` command line run as a user runs it, in a subprocess: help for every verb,
node provisioning against the session's real Mosquitto, configuration errors as one line
naming the setting, the AsyncAPI document and development certificates."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlmodel import Session, select

from broker.passwords import list_accounts
from cloud_service import tables
from cloud_service.database import make_engine
from schemas.addresses import MqttUrl
from tests.fixtures.broker import RunningMosquitto

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0

# Every verb the CLI has, as a user types it before --help.
VERBS: list[list[str]] = [
    [], ["up"], ["cloud"], ["edge"],
    ["node"], ["node", "add"],
    ["broker"], ["broker", "account"], ["broker", "certs"], ["broker", "run"],
    ["schemas"], ["schemas", "asyncapi"],
]
# Verbs the design's "Command line" section promises besides those.
DESIGN_VERBS: list[list[str]] = [
    ["trigger"], ["node", "list"], ["node", "rm"], ["nodes"],
    ["schedules"], ["schedules", "list"], ["schedules", "add"], ["schedules", "rm"],
    ["recordings"], ["recordings", "list"], ["recordings", "download"], ["tail"],
]


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any CCTV_ setting, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCTV_")}
    env.update(settings)
    return env


def cctv(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # cwd is a fresh directory so no stray .env file is read.
    return subprocess.run(
        [sys.executable, "-m", "cctv", *args], cwd=cwd, env=dict(env or clean_env()),
        input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def parse_env(text: str) -> list[dict[str, str]]:
    """KEY=VALUE lines, split into one dict per node (each starts with CCTV_NODE_ID);
    blank lines, as an env file allows, separate them."""
    nodes: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a KEY=VALUE line: {line!r}"
        if key == "CCTV_NODE_ID":
            nodes.append({})
        assert nodes, f"{key} before CCTV_NODE_ID"
        nodes[-1][key] = value
    return nodes


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]


def unique(prefix: str) -> str:
    # The broker is shared by the session: ids of our own, never another test's accounts.
    return f"{prefix}-{secrets.token_hex(3)}"


def mqtt5_connect_code(url: MqttUrl) -> int:
    """The CONNACK reason code a paho MQTT 5 client gets with these credentials."""
    assert url.username is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=url.username,
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(url.username, url.password)
    connected = threading.Event()
    codes: list[int] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode,
                   _p: object) -> None:
        codes.append(reason.value)
        connected.set()

    client.on_connect = on_connect
    client.connect(url.host, url.port, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


# --- help --------------------------------------------------------------------------------


def _help(args: list[str], cwd: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    return args, cctv(*args, "--help", cwd=cwd)


def test_help_of_every_verb(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda a: _help(a, tmp_path), VERBS))
    for args, result in results:
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage" in result.stdout, args
        assert "Traceback" not in result.stderr
    top = results[0][1].stdout
    for verb in ("up", "cloud", "edge", "node", "broker", "schemas", "nodes",
                 "schedules", "recordings", "tail"):
        assert verb in top


@pytest.mark.parametrize("args", DESIGN_VERBS, ids=" ".join)
def test_help_of_the_design_verbs(args: list[str], tmp_path: Path) -> None:
    result = cctv(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_no_arguments_shows_help_not_a_traceback(tmp_path: Path) -> None:
    result = cctv(cwd=tmp_path)
    assert "Usage" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# --- node add ----------------------------------------------------------------------------


def provisioning_env(mosquitto: RunningMosquitto) -> dict[str, str]:
    return clean_env(CCTV_BROKER_PASSWORD_FILE=str(mosquitto.password_file),
                     CCTV_BROKER_PUBLIC_URL=f"mqtt://127.0.0.1:{mosquitto.port}")


def test_node_add_prints_env_lines_the_broker_then_accepts(mosquitto: RunningMosquitto,
                                                           tmp_path: Path) -> None:
    ids = [unique("site-a"), unique("site-b")]
    result = cctv("node", "add", *ids, cwd=tmp_path, env=provisioning_env(mosquitto))
    assert result.returncode == 0, result.stderr
    nodes = parse_env(result.stdout)
    assert [n["CCTV_NODE_ID"] for n in nodes] == ids
    for node in nodes:
        assert set(node) >= {"CCTV_NODE_ID", "CCTV_MQTT_URL"}
        url = MqttUrl.parse(node["CCTV_MQTT_URL"])
        assert (url.host, url.port, url.tls) == ("127.0.0.1", mosquitto.port, False)
        assert url.username == node["CCTV_NODE_ID"]
        assert url.password
    # Each node has its own password.
    assert len({MqttUrl.parse(n["CCTV_MQTT_URL"]).password for n in nodes}) == 2
    assert set(ids) <= set(list_accounts(mosquitto.password_file))
    # No password on stderr, ever.
    for node in nodes:
        assert str(MqttUrl.parse(node["CCTV_MQTT_URL"]).password) not in result.stderr

    mosquitto.broker.reload()
    for node in nodes:
        url = MqttUrl.parse(node["CCTV_MQTT_URL"])
        assert url.username is not None
        assert url.password is not None
        mosquitto.wait_accepts(url.username, url.password)  # SIGHUP applies asynchronously
        assert mqtt5_connect_code(url) == 0
    # And a wrong password is still refused (135 Not authorized / 134 Bad credentials).
    wrong = MqttUrl.parse(nodes[0]["CCTV_MQTT_URL"])
    wrong = MqttUrl(wrong.host, wrong.port, wrong.tls, wrong.username, "not-the-password")
    assert mqtt5_connect_code(wrong) in (134, 135)


def test_node_add_reads_ids_from_stdin_and_writes_private_env_files(
    mosquitto: RunningMosquitto, tmp_path: Path,
) -> None:
    ids = [unique("stdin-a"), unique("stdin-b"), unique("stdin-c")]
    out_dir = tmp_path / "envs"
    result = cctv("node", "add", "-", "--out-dir", str(out_dir), cwd=tmp_path,
                  env=provisioning_env(mosquitto), stdin="\n".join(ids) + "\n\n")
    assert result.returncode == 0, result.stderr
    assert "CCTV_MQTT_URL" not in result.stdout  # written to files, not printed
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{n}.env" for n in ids)
    for node_id in ids:
        path = out_dir / f"{node_id}.env"
        assert path.stat().st_mode & 0o777 == 0o600
        (node,) = parse_env(path.read_text())
        assert node["CCTV_NODE_ID"] == node_id
        url = MqttUrl.parse(node["CCTV_MQTT_URL"])
        assert (url.username, url.port) == (node_id, mosquitto.port)
    assert set(ids) <= set(list_accounts(mosquitto.password_file))


@pytest.mark.parametrize("bad_id", ["Bad/Id", "cctv-cloud"])
def test_node_add_refuses_an_invalid_or_reserved_id(bad_id: str, mosquitto: RunningMosquitto,
                                                   tmp_path: Path) -> None:
    good = unique("good")
    before = mosquitto.password_file.read_bytes()
    result = cctv("node", "add", good, bad_id, cwd=tmp_path, env=provisioning_env(mosquitto))
    assert_one_line_error(result, bad_id)
    assert result.stdout == ""
    # Nothing was provisioned, not even the valid id before it.
    assert mosquitto.password_file.read_bytes() == before
    assert good not in list_accounts(mosquitto.password_file)


def test_node_add_reports_a_broker_that_is_not_running_in_one_line(tmp_path: Path) -> None:
    result = cctv("node", "add", "site-x", "--password-file", str(tmp_path / "passwd"),
                  "--broker", "mqtt://127.0.0.1:1883",
                  "--broker-pid-file", str(tmp_path / "no-such.pid"), cwd=tmp_path)
    assert_one_line_error(result, "no-such.pid")


def test_node_add_registers_the_nodes_with_the_cloud_database(tmp_path: Path) -> None:
    database = tmp_path / "cloud" / "cloud.db"
    result = cctv("node", "add", "site-p", "site-q", cwd=tmp_path, env=clean_env(
        CCTV_BROKER_PASSWORD_FILE=str(tmp_path / "passwd"),
        CCTV_BROKER_PUBLIC_URL="mqtt://127.0.0.1:1883",
        CCTV_DATABASE_URL=f"sqlite:///{database}"))
    assert result.returncode == 0, result.stderr
    engine = make_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            assert set(session.exec(select(tables.Node.node_id))) == {"site-p", "site-q"}
    finally:
        engine.dispose()
    assert list_accounts(tmp_path / "passwd") == ["site-p", "site-q"]


def test_node_add_without_a_password_file_names_the_setting(tmp_path: Path) -> None:
    result = cctv("node", "add", "site-x", cwd=tmp_path,
                  env=clean_env(CCTV_BROKER_PUBLIC_URL="mqtt://127.0.0.1:1883"))
    assert_one_line_error(result, "CCTV_BROKER_PASSWORD_FILE")


# --- services refuse bad configuration with one line -------------------------------------


def test_cloud_with_a_bad_http_addr_names_it(tmp_path: Path) -> None:
    result = cctv("cloud", cwd=tmp_path, env=clean_env(
        CCTV_HTTP_ADDR="nonsense", CCTV_API_TOKENS="t1", CCTV_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(result, "CCTV_HTTP_ADDR")


def test_cloud_without_api_tokens_names_the_setting(mosquitto: RunningMosquitto,
                                                    tmp_path: Path) -> None:
    result = cctv("cloud", cwd=tmp_path, env=clean_env(
        CCTV_MQTT_URL=mosquitto.url("cctv-cloud"), CCTV_DATA_DIR=str(tmp_path / "d"),
        CCTV_HTTP_ADDR="127.0.0.1:0", CCTV_EPHEMERAL_SESSION="true"))
    assert_one_line_error(result, "CCTV_API_TOKENS")
    assert mosquitto.account("cctv-cloud") not in result.stderr


def test_edge_without_a_node_id_names_the_setting(tmp_path: Path) -> None:
    result = cctv("edge", cwd=tmp_path, env=clean_env(
        CCTV_MQTT_URL="mqtt://node:pw@127.0.0.1:1", CCTV_DATA_DIR=str(tmp_path / "d")))
    assert_one_line_error(result, "CCTV_NODE_ID")
    assert not (tmp_path / "d").exists()  # refused before touching anything


# --- documents and certificates ----------------------------------------------------------


def test_schemas_asyncapi_prints_the_committed_document(tmp_path: Path) -> None:
    result = cctv("schemas", "asyncapi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    committed = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    assert json.loads(result.stdout) == committed


def test_broker_certs_writes_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    result = cctv("broker", "certs", str(directory), "--hostname", "broker.example",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("ca.crt", "server.crt", "server.key"):
        assert (directory / name).is_file(), name
        assert name in result.stdout
    assert (directory / "server.key").stat().st_mode & 0o077 == 0
    assert b"PRIVATE KEY" in (directory / "server.key").read_bytes()
    assert b"PRIVATE KEY" not in result.stdout.encode()
    ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((directory / "server.crt").read_bytes())
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker.example" in names.get_values_for_type(x509.DNSName)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
