"""`cctv`: run the services and operate the fleet.

Every verb has `--help`; a bad setting or argument ends with one line naming
it and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from pydantic import ValidationError
from rich.progress import track

from cctv.cli_common import fail
from cctv.cli_nodes import node_list, node_rm
from cctv.cli_recordings import recordings_app
from cctv.cli_schedules import schedules_app
from cctv.cli_tail import tail
from cctv.logs import setup_logging
from cctv.settings_errors import describe
from cctv.up_broker import BrokerChoice

# Older typer raises click's own exceptions; newer ones vendor click inside typer.
_USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException, getattr(typer, "TyperException", click.ClickException))
_ABORTS: tuple[type[Exception], ...] = (click.Abort, typer.Abort)


class _OneLineErrors(typer.Typer):
    """Typer whose usage errors (a missing argument, a value of the wrong type)
    are one line on stderr, like every other error of the CLI."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("standalone_mode", False)
        try:
            result = super().__call__(*args, **kwargs)
        except _USAGE_ERRORS as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                sys.exit(2)  # the help has been shown
            ctx = getattr(exc, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{hint}", err=True)  # type: ignore[attr-defined]
            sys.exit(getattr(exc, "exit_code", 2))
        except _ABORTS:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


app = _OneLineErrors(help="CCTV fleet: edge nodes, cloud service and broker.",
                     no_args_is_help=True, pretty_exceptions_enable=False)
node_app = typer.Typer(help="Edge nodes: provision, list, remove.", no_args_is_help=True)
broker_app = typer.Typer(help="Broker accounts, certificates and a local broker.",
                         no_args_is_help=True)
schemas_app = typer.Typer(help="The wire contract's documents.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(broker_app, name="broker")
app.add_typer(schemas_app, name="schemas")


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Where everything is kept.")] = Path(".cctv"),
    http_port: Annotated[int, typer.Option(help="Cloud HTTP port; 0 picks a free one when "
                                                "8000 is taken.")] = 0,
    broker: Annotated[BrokerChoice, typer.Option(
        help="auto: Mosquitto when installed, else the embedded amqtt broker.")
    ] = BrokerChoice.AUTO,
) -> None:
    """Run the whole system on this machine: broker, cloud, one edge node with a
    synthetic camera, file storage. Ctrl-C stops it."""
    from cctv.up import run_up

    setup_logging(os.environ.get("CCTV_LOG_LEVEL", "INFO"))
    try:
        run_up(data_dir.resolve(), http_port, broker)
    except (RuntimeError, ValueError, OSError) as exc:
        fail(str(exc), 1)


@app.command()
def cloud() -> None:
    """Run the cloud service (ingest, REST API, dashboard) from CCTV_* settings."""
    from cloud_service.service import ConfigError, serve
    from cloud_service.settings import CloudSettings

    try:
        settings = CloudSettings()
    except ValidationError as exc:
        fail(describe(exc))
    setup_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


@app.command()
def edge() -> None:
    """Run an edge node from CCTV_* settings (CCTV_NODE_ID, CCTV_MQTT_URL, ...)."""
    from edge_node.service import EdgeNode
    from edge_node.settings import EdgeSettings

    try:
        settings = EdgeSettings()
    except ValidationError as exc:
        fail(describe(exc))
    setup_logging(settings.log_level)
    node = EdgeNode(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: node.stop())
    node.run()


@app.command()
def trigger(
    node_id: Annotated[str, typer.Argument(help="The node the camera is on.")],
    camera_id: Annotated[str, typer.Argument(help="The camera to record.")],
    duration: Annotated[int, typer.Option(help="Seconds to record.", min=1)] = 30,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 10.0,
    mqtt_url: Annotated[str | None, typer.Option(
        envvar="CCTV_MQTT_URL", help="Broker URL with the cctv-operator account.")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        envvar="CCTV_MQTT_CA_FILE", help="CA file for mqtts://.")] = None,
) -> None:
    """Record a camera by hand now. Exit 0 accepted, 1 refused, 2 no reply in time."""
    from cctv.trigger import TriggerError, send_record
    from schemas.addresses import MqttUrl
    from schemas.ids import check_id
    from schemas.topics import TopicTable

    if mqtt_url is None:
        fail("CCTV_MQTT_URL: set it (mqtt://cctv-operator:PASSWORD@host:1883)")
    try:
        url = MqttUrl.parse(mqtt_url)
        check_id(node_id, "node id")
        check_id(camera_id, "camera id")
        topics = TopicTable(os.environ.get("CCTV_TOPIC_PREFIX", "cctv/v1"))
        code, reply = send_record(url, topics, node_id=node_id, camera_id=camera_id,
                                  duration_s=duration, timeout_s=timeout, ca_file=ca_file)
    except (ValueError, TriggerError) as exc:
        fail(str(exc))
    if reply is None:
        typer.echo(f"no reply from {node_id} within {timeout:g} s", err=True)
    elif reply.ok:
        typer.echo(f"recording {camera_id} on {node_id}: {json.dumps(reply.result)}")
    else:
        typer.echo(f"refused by {node_id}: {reply.error}", err=True)
    raise typer.Exit(code)


def _read_ids(node_ids: list[str]) -> list[str]:
    if node_ids == ["-"]:
        return [line.strip() for line in sys.stdin if line.strip()]
    return node_ids


@node_app.command("add")
def node_add(
    node_ids: Annotated[list[str], typer.Argument(help="Node ids, or - to read them from stdin.")],
    password_file: Annotated[Path | None, typer.Option(
        envvar="CCTV_BROKER_PASSWORD_FILE", help="Mosquitto password file.")] = None,
    broker: Annotated[str | None, typer.Option(
        envvar="CCTV_BROKER_PUBLIC_URL", help="Broker URL nodes connect to.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        help="Write one NODE_ID.env per node here instead of printing.")] = None,
    broker_pid_file: Annotated[Path | None, typer.Option(
        help="Signal this broker to reload its password file.")] = None,
) -> None:
    """Create nodes' broker accounts and print each node's env file."""
    from broker.passwords import BrokerNotRunningError, signal_reload
    from broker.provisioning import provision_nodes

    if password_file is None:
        fail("CCTV_BROKER_PASSWORD_FILE: set it or pass --password-file")
    if broker is None:
        fail("CCTV_BROKER_PUBLIC_URL: set it or pass --broker (mqtts://host:8883)")
    ids = _read_ids(node_ids)
    try:
        envs = provision_nodes(password_file, ids, broker)
    except ValueError as exc:
        fail(str(exc))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for node_id, text in track(envs.items(), description="writing env files",
                                   disable=len(envs) < 50):
            path = out_dir / f"{node_id}.env"
            path.write_text(text)
            path.chmod(0o600)
    else:
        typer.echo("\n".join(envs.values()), nl=False)
    _register_with_cloud(list(envs))
    if broker_pid_file is not None:
        try:
            signal_reload(broker_pid_file)
        except BrokerNotRunningError as exc:
            fail(f"accounts written, but the broker was not reloaded: {exc}", 1)


def _register_with_cloud(node_ids: list[str]) -> None:
    url = os.environ.get("CCTV_DATABASE_URL")
    if not url:
        return
    from cloud_service.database import make_engine, migrate
    from cloud_service.registry import register_nodes

    engine = make_engine(url)
    migrate(engine)
    register_nodes(engine, node_ids)
    engine.dispose()


@broker_app.command("account")
def broker_account(
    account: Annotated[str, typer.Argument(help="cctv-cloud or cctv-operator.")],
    password_file: Annotated[Path | None, typer.Option(
        envvar="CCTV_BROKER_PASSWORD_FILE", help="Mosquitto password file.")] = None,
    broker: Annotated[str, typer.Option(
        envvar="CCTV_BROKER_PUBLIC_URL", help="Broker URL.")] = "mqtt://127.0.0.1:1883",
) -> None:
    """Create (or reset) a service account and print its CCTV_MQTT_URL line."""
    from broker.passwords import RESERVED_ACCOUNTS, add_accounts
    from broker.provisioning import node_mqtt_url

    if account not in RESERVED_ACCOUNTS:
        fail(f"account must be one of {', '.join(RESERVED_ACCOUNTS)}, not {account!r}")
    if password_file is None:
        fail("CCTV_BROKER_PASSWORD_FILE: set it or pass --password-file")
    try:
        password = add_accounts(password_file, [account])[account]
        typer.echo(f"CCTV_MQTT_URL={node_mqtt_url(broker, account, password)}")
    except ValueError as exc:
        fail(str(exc))


@broker_app.command("certs")
def broker_certs(
    directory: Annotated[Path, typer.Argument(help="Where to write ca.crt, server.crt/key.")],
    hostname: Annotated[list[str] | None, typer.Option(
        "--hostname", help="Extra name or IP for the server certificate (repeatable).")] = None,
) -> None:
    """Make a development CA and a server certificate for the TLS listener."""
    from broker.certs import generate_dev_certs

    files = generate_dev_certs(directory, hostname or [])
    typer.echo(f"cafile {files.ca_file}\ncertfile {files.cert_file}\nkeyfile {files.key_file}")


@broker_app.command("run")
def broker_run(
    data_dir: Annotated[Path, typer.Option(help="Broker run dir (config, data, accounts).")],
    port: Annotated[int, typer.Option(help="Plain MQTT port on loopback.")] = 1883,
) -> None:
    """Run Mosquitto from the project's mosquitto.conf on PORT until Ctrl-C."""
    from broker.dev_broker import BrokerStartError
    from broker.launcher import MosquittoBroker

    setup_logging(os.environ.get("CCTV_LOG_LEVEL", "INFO"))
    broker = MosquittoBroker(data_dir.resolve(), port=port)
    try:
        broker.start()
    except BrokerStartError as exc:
        fail(str(exc), 1)
    typer.echo(f"mosquitto on mqtt://{broker.host}:{broker.port} "
               f"(accounts in {broker.password_file})")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()


@schemas_app.command("asyncapi")
def schemas_asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of the MQTT contract (docs/asyncapi.json)."""
    from schemas.asyncapi import asyncapi_document

    typer.echo(json.dumps(asyncapi_document(), indent=2))


@schemas_app.command("openapi")
def schemas_openapi() -> None:
    """Print the OpenAPI document of the cloud's REST API (docs/openapi.json)."""
    from cloud_service.api.app import openapi_document

    typer.echo(json.dumps(openapi_document(), indent=2))


# The managing verbs talk REST to the cloud (CCTV_API_URL, CCTV_API_TOKEN); their
# code is in cctv/cli_*.py so this module stays the map of the command line.
node_app.command("list")(node_list)
node_app.command("rm")(node_rm)
app.command("nodes", help="The fleet (the same as `cctv node list`).")(node_list)
app.add_typer(schedules_app, name="schedules")
app.add_typer(recordings_app, name="recordings")
app.command("tail")(tail)

__all__ = ["app", "fail", "main"]


def main() -> None:
    app()
