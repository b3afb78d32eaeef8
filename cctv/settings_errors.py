"""Turns a settings validation error into one line naming the setting."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError, prefix: str = "CCTV_") -> str:
    lines = []
    for error in exc.errors(include_url=False):
        name = prefix + "_".join(str(p) for p in error["loc"][:1]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "; ".join(lines)
