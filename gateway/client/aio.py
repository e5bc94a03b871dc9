"""``AsyncGatewayClient``: the asyncio client, over aiohttp (already the gateway's own dependency).

One ``aiohttp.ClientSession`` (made on first use, or given), whose connection
pool keeps connections alive. The calls are ``gateway.client.api``'s flows,
exactly as the blocking client runs them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Unpack

import aiohttp

from gateway.client.api import Api, Flow, Item, Request, Response, Settings, SignedUrl, SignOptions, decode
from gateway.client.errors import ApiError, TransportError


class AsyncGatewayClient:
    """Signed URLs for an asyncio backend: ``(await client.sign("intro", "video", viewer_token=token)).url``."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **settings: Unpack[Settings],
    ) -> None:
        self._api = Api(settings)
        self._base = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._sleep = sleep

    async def sign(self, media_id: str, rendition: str = "video", **options: Unpack[SignOptions]) -> SignedUrl:
        """A signed URL (``POST /v1/sign``), or the one handed out for the same request while still fresh."""
        result: SignedUrl = await self._drive(self._api.sign(media_id, rendition, options))
        return result

    async def sign_batch(self, items: Sequence[Item], **viewer: Unpack[SignOptions]) -> list[SignedUrl | ApiError]:
        """Many items for one viewer (``POST /v1/sign/batch``, in chunks): a URL or the item's error, in order."""
        results: list[SignedUrl | ApiError] = await self._drive(self._api.sign_batch(items, viewer))
        return results

    async def explain(self, url: str, *, profile: str | None = None, client_ip: str | None = None) -> dict[str, Any]:
        """Why /v1/verify would refuse ``url`` now (``POST /v1/explain``; the principal needs ``admin``)."""
        answer: dict[str, Any] = await self._drive(self._api.explain(url, profile, client_ip))
        return answer

    async def put_media(self, media_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._drive(self._api.media("PUT", media_id, body=item))
        return answer

    async def get_media(self, media_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._drive(self._api.media("GET", media_id))
        return answer

    async def delete_media(self, media_id: str) -> None:
        await self._drive(self._api.media("DELETE", media_id))

    async def revoke_links(self, media_id: str, reason: str) -> dict[str, Any]:
        flow = self._api.media("POST", media_id, "/revoke-links", {"reason": reason})
        answer: dict[str, Any] = await self._drive(flow)
        return answer

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _drive(self, flow: Flow) -> Any:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._call(request))
        except StopIteration as done:
            return done.value

    async def _call(self, request: Request) -> Any:
        body = None if request.body is None else json.dumps(request.body).encode()
        for attempt in itertools.count():
            try:
                answer = await self._send(request, body)
                return decode(answer, self._api.clock())
            except ApiError as error:
                delay = self._api.retry.delay(attempt, error)
                if delay is None:
                    raise
                await self._sleep(delay)

    async def _send(self, request: Request, body: bytes | None) -> Response:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self._api.timeout)
        ssl = self._api.ssl_context if self._api.ssl_context is not None else True
        try:
            async with self._session.request(
                request.method, self._base + request.path, data=body, headers=self._api.headers(request),
                ssl=ssl, timeout=timeout,
            ) as answer:  # fmt: skip
                return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, await answer.read())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportError(f"no answer from the gateway: {exc!r}") from exc
