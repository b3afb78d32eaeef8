"""POST /api/commands: send a command to a node and wait for its reply."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from cloud_service import tables
from cloud_service.api.context import Ctx
from schemas.codec import COMMAND_ADAPTER, encode
from schemas.commands import Command, CommandReply
from schemas.ids import Identifier, new_id, utc_now
from schemas.topics import Channel

router = APIRouter(prefix="/api", tags=["commands"])


class CommandIn(BaseModel):
    """The command's own fields (as on the wire) plus the node and how long to wait."""

    model_config = ConfigDict(extra="allow")
    node_id: Identifier
    command: str
    command_id: Identifier | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0


def _store(context: Ctx, node_id: str, command: Command) -> None:
    with Session(context.engine) as session:
        if session.get(tables.Node, node_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no node {node_id}")
        if session.get(tables.Command, command.command_id) is None:
            session.add(tables.Command(command_id=command.command_id, node_id=node_id,
                                       command=command.model_dump(mode="json"),
                                       issued_at=utc_now()))
            session.commit()


@router.post("/commands", responses={504: {"description": "No reply in time"}})
async def send_command(body: CommandIn, context: Ctx) -> CommandReply:
    fields: dict[str, Any] = body.model_dump(exclude={"node_id", "timeout_s"})
    fields["command_id"] = body.command_id or new_id()
    try:
        command = COMMAND_ADAPTER.validate_python(fields, strict=False)
    except ValidationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            exc.errors(include_url=False, include_context=False)) from None
    await asyncio.to_thread(_store, context, body.node_id, command)
    reply = context.live.expect_reply(command.command_id)
    context.publish(context.topics.topic(body.node_id, Channel.COMMANDS), encode(command))
    try:
        return await asyncio.wait_for(reply, body.timeout_s)
    except TimeoutError:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, {
            "command_id": command.command_id, "error": "no reply from the node in time"}) \
            from None
    finally:
        context.live.forget(command.command_id)
