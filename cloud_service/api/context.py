"""What the API's routes share: the engine, the topic table, the publisher.

Built by the composition root and stored on `app.state`; routes reach it
through the `Ctx` and `DbSession` dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from cloud_service.desired_state import Publication
from cloud_service.live import Live
from cloud_service.media_source import MediaSource
from schemas.topics import TopicTable

T = TypeVar("T")


@dataclass(frozen=True)
class Provisioning:
    """Where the service creates nodes' broker accounts, when it manages them."""

    password_file: Path
    public_url: str
    broker_pid_file: Path | None = None


@dataclass(frozen=True)
class ApiContext:
    engine: Engine
    topics: TopicTable
    publish_retained: Callable[[str, bytes], None]
    tokens: tuple[str, ...]
    publish: Callable[[str, bytes], None] = lambda _topic, _payload: None
    live: Live = field(default_factory=Live)
    provisioning: Provisioning | None = None
    media: MediaSource | None = None

    def commit_and_publish(self, session: Session, publications: Iterable[Publication]) -> None:
        """Commit, then publish the retained documents whose revisions it fixed."""
        session.commit()
        for publication in publications:
            self.publish_retained(publication.topic, publication.payload)


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def get_session(context: Annotated[ApiContext, Depends(get_context)]) -> Iterator[Session]:
    with Session(context.engine) as session:
        yield session


Ctx = Annotated[ApiContext, Depends(get_context)]
DbSession = Annotated[Session, Depends(get_session)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
