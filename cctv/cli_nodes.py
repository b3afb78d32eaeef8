"""`cctv node list` (also `cctv nodes`) and `cctv node rm`: the fleet over REST.

`node rm` also removes the node's broker account when it can reach the
password file, so a decommissioned box can no longer connect.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cctv.cli_common import (
    DEFAULT_API_URL,
    ApiUrlOption,
    JsonOption,
    LimitOption,
    TokenOption,
    api,
    fail,
    table_console,
)
from cctv.views import nodes_table


def node_list(
    online: Annotated[bool | None, typer.Option(
        "--online/--offline", show_default=False,
        help="Only nodes online, or only offline (default: all).")] = None,
    limit: LimitOption = 100,
    json_out: JsonOption = False,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """The fleet: each node's presence, heartbeat age, revision drift, upload
    backlog and missing events."""
    with api(api_url, token) as client:
        nodes, total = client.list_nodes(online=online, limit=limit)
    if json_out:
        typer.echo(json.dumps({"items": nodes, "total": total}, indent=2))
        return
    console = table_console()
    console.print(nodes_table(nodes, datetime.now(UTC)))
    shown = f"{len(nodes)} of {total}" if total > len(nodes) else str(total)
    console.print(f"{shown} node{'s' if total != 1 else ''}", style="dim")


def node_rm(
    node_ids: Annotated[list[str], typer.Argument(help="Node ids to remove.")],
    password_file: Annotated[Path | None, typer.Option(
        envvar="CCTV_BROKER_PASSWORD_FILE",
        help="Mosquitto password file: also remove the nodes' broker accounts.")] = None,
    broker_pid_file: Annotated[Path | None, typer.Option(
        help="Signal this broker to reload its password file (drops the nodes' "
             "connections).")] = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
    token: TokenOption = None,
) -> None:
    """Remove nodes from the cloud (their cameras too; their retained desired
    state is cleared) and, with CCTV_BROKER_PASSWORD_FILE, their broker accounts."""
    from broker.passwords import (  # noqa: PLC0415  # only when removing
        BrokerNotRunningError,
        list_accounts,
        remove_accounts,
        signal_reload,
        validate_node_id,
    )
    from cctv.api_client import ApiRefusedError  # noqa: PLC0415

    try:
        ids = [validate_node_id(n) for n in node_ids]
    except ValueError as exc:
        fail(str(exc))
    present: set[str] = set()
    if password_file is not None:
        present = set(list_accounts(password_file)) & set(ids)
    done: list[str] = []  # gone from the cloud (or never there, with an account)
    unknown: list[str] = []
    refused: list[str] = []
    removed: list[str] = []
    with api(api_url, token) as client:
        try:
            for node_id in ids:
                try:
                    client.delete_node(node_id)
                except ApiRefusedError as exc:
                    # A node provisioned without registering with the cloud
                    # still has a broker account worth removing.
                    if exc.status != 404 or node_id not in present:
                        refused.append(f"{node_id}: {exc}")
                        continue
                    unknown.append(node_id)
                done.append(node_id)
        finally:
            # Even if the API fails part way, a node the cloud forgot must not
            # keep its way into the broker.
            if password_file is not None and done:
                removed = remove_accounts(password_file, done)
    for node_id in done:
        parts = ["not registered with the cloud" if node_id in unknown else "removed"]
        if password_file is not None:
            parts.append("broker account removed" if node_id in removed
                         else "no broker account")
        typer.echo(f"{node_id}: {', '.join(parts)}")
    if broker_pid_file is not None and removed:
        try:
            signal_reload(broker_pid_file)
        except BrokerNotRunningError as exc:
            fail(f"accounts removed, but the broker was not reloaded: {exc}", 1)
    if refused:
        fail("; ".join(refused), 1)
