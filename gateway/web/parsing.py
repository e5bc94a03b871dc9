"""Reading request bodies into their declared models; anything else is InvalidInput (400).

A body is read in two strict steps: ``gateway.strictjson`` (no NaN, Infinity,
out-of-range numbers or duplicate keys), then ``msgspec.convert`` into the
model from ``gateway.web.schemas`` with ``strict=True`` (no coercion: ``"60"``
is not an integer) and unknown fields refused by name.

``POST /v1/sign``'s body is first tried in one step (``_direct``): msgspec reading it straight into the model,
a third of the time of the two. Only when that is certain to give what the two steps give; anything else,
every refusal included, is decided by the two steps, so each answer and message is theirs
(tests/test_parsing_direct.py holds the two to the same answers over arbitrary bodies).
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from gateway import strictjson
from gateway.errors import InvalidInput, RequestTimeout
from gateway.web import schemas
from gateway.web.appkeys import SERVICES

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


# Models read in one step: every field text, an integer, a choice, a list or a nested model of the same (no float,
# no ``Any``), so no number or value msgspec reads differently from ``json`` can reach a successful result.
_DIRECT: frozenset[type] = frozenset({schemas.SignRequest})
_decode_tree = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def decode(raw: bytes, model: type[T]) -> T:
    if model in _DIRECT:
        body = _direct(raw, model)
        if body is not None:
            return body
    try:
        data = strictjson.loads(raw)
    except strictjson.StrictJSONError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    try:
        return msgspec.convert(data, model, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"invalid request body: {exc}") from None


def _direct(raw: bytes, model: type[T]) -> T | None:
    """``raw`` read by msgspec alone when that is certain to be what ``strictjson`` then ``convert`` give; None:
    let the two steps decide.

    msgspec refuses what ``strictjson`` refuses (NaN, Infinity, out-of-range numbers, control characters,
    invalid UTF-8, a BOM) but one thing: a repeated key, which it reads as its last value. That drops a member
    (its colon and every colon in it), so the text re-encoded has fewer colons than the body: ``strictjson``'s
    own count. A ``\\u`` escape (a lone surrogate, or a colon spelt so) is left to the two steps, and so is a
    body nested too deeply for msgspec (it raises RecursionError where ``strictjson`` refuses with a 400).
    """
    if raw.find(b"\\u") >= 0:  # not ``in``: bytes.__contains__ tries an int first and drops a TypeError it formats
        return None
    try:
        tree = _decode_tree(raw)
        if _encode(tree).count(b":") != raw.count(b":"):
            return None
        return msgspec.convert(tree, model, strict=True)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


async def body(request: web.Request, model: type[T]) -> T:
    # The exact header is the common case; aiohttp's own parse of it (parameters, case) costs a few µs.
    if request.headers.get("Content-Type") != "application/json" and request.content_type != "application/json":
        raise InvalidInput("the body must be application/json")
    deadline = request.app[SERVICES].config.body_timeout
    try:
        if request.content.is_eof():  # all of it arrived with the headers (most bodies): nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(deadline):  # a body trickled a byte at a time must not hold the connection
                raw = await request.read()
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {deadline:g} s") from None
    except web.RequestPayloadError:  # e.g. a Content-Encoding the bytes do not match, or broken chunking
        raise InvalidInput("the body could not be read: its encoding or framing is malformed") from None
    return decode(raw, model)


def choice(enum: type[E], value: Any, name: str) -> E:
    """One value of a closed set (the CLI's options), or InvalidInput listing the set."""
    try:
        return enum(value)
    except ValueError:
        options = ", ".join(e.value for e in enum)
        raise InvalidInput(f"{name} must be one of: {options}") from None
