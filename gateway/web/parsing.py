"""Reading request bodies and fields; anything malformed is InvalidInput (400)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web

from gateway.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


async def json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("the body must be application/json")
    try:
        body = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    return body


def string(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string")
    return value


def required_string(body: Mapping[str, Any], name: str) -> str:
    value = string(body, name)
    assert value is not None
    return value


def optional_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer")
    return value


def choice(enum: type[E], value: Any, name: str) -> E:
    try:
        return enum(value)
    except ValueError:
        options = ", ".join(e.value for e in enum)
        raise InvalidInput(f"{name} must be one of: {options}") from None


def string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} must be a list of strings")
    return value
