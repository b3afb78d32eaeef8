"""Bearer-token authentication for everything under /api.

Tokens come from CCTV_API_TOKENS. `?token=` is accepted only where a browser
cannot send a header (EventSource, <video>), i.e. routes that opt in.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from cloud_service.api.context import ApiContext, get_context

logger = logging.getLogger(__name__)
AUTH_FAILURES = Counter("cctv_api_auth_failures_total", "Requests refused for a bad token")

_bearer = HTTPBearer(auto_error=False)


def _known(token: str, context: ApiContext) -> bool:
    # Compare against every token in constant time so timing reveals nothing.
    matches = [hmac.compare_digest(token.encode(), t.encode()) for t in context.tokens]
    return any(matches)


def _refuse(request: Request) -> HTTPException:
    AUTH_FAILURES.inc()
    logger.warning("api.unauthorized path=%s client=%s", request.url.path,
                   request.client.host if request.client else "-")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    context: Annotated[ApiContext, Depends(get_context)],
) -> None:
    if credentials is None or not _known(credentials.credentials, context):
        raise _refuse(request)


def require_token_or_query(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    context: Annotated[ApiContext, Depends(get_context)],
) -> None:
    token = credentials.credentials if credentials else request.query_params.get("token", "")
    if not token or not _known(token, context):
        raise _refuse(request)
