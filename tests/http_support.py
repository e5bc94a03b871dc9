"""Real sockets: the app behind ``gateway.web.server.Runner`` (as ``gatewayctl serve`` runs it), raw HTTP bytes,
and JWTs built byte by byte (for payloads no JWT library would write: NaN, duplicate claims)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.web.server import Runner
from tests.support import World


class GatewayTestServer(TestServer):
    """aiohttp's test server, run by the gateway's own Runner (JSON answers for aiohttp's own refusals)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return Runner(self.app, **kwargs)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_http(port: int, request: bytes) -> RawResponse:
    """Send bytes as they are (no client library would send these) and read the answer until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return RawResponse(int(status_line.split(" ")[1]), headers, body)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: bytes | dict[str, Any], payload: bytes | dict[str, Any], key: Ed25519PrivateKey | None) -> str:
    """A JWS from exact bytes, signed with ``key`` (EdDSA) or unsigned (empty signature)."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(head)}.{b64(body)}"
    signature = b64(key.sign(signing_input.encode())) if key is not None else ""
    return f"{signing_input}.{signature}"


def hmac_jwt(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 JWS over any secret (pyjwt refuses to use a public key as one; an attacker does not)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def principal_key(world: World, pid: str) -> tuple[str, Ed25519PrivateKey]:
    credential_id, seed = world.seeds[pid]
    return credential_id, Ed25519PrivateKey.from_private_bytes(seed)


def dev_idp_key(world: World) -> Ed25519PrivateKey:
    key = load_pem_private_key(world.services.config.dev_idp_key_path.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key
