"""A Python client for backends: signed URLs from the gateway, blocking or asyncio.

    from gateway.client import GatewayClient
    with GatewayClient("https://gateway.internal:8443", credential="keys/credentials/web.json") as gateway:
        signed = gateway.sign("intro", "video", viewer_token=token, scope="prefix", form="path")
        signed.url, signed.expires_at

``AsyncGatewayClient`` has the same calls, awaited. Both mint principal
tokens from the credential file, retry 429 and 503 (honouring
``Retry-After``), hand out a URL again for the same request until half its
lifetime has passed, and raise one exception class per error code
(``gateway.client.errors``). Only the client modules are imported by this
package: no store, no server.
"""

from gateway.client.aio import AsyncGatewayClient
from gateway.client.api import Item, RetryPolicy, Settings, SignedUrl, SignOptions, Viewer
from gateway.client.errors import (
    ApiError,
    AuditUnavailable,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StateStale,
    TransportError,
    Unauthenticated,
    Unavailable,
)
from gateway.client.sync import GatewayClient

__all__ = [
    "ApiError", "AsyncGatewayClient", "AuditUnavailable", "Conflict", "Forbidden", "GatewayClient", "InvalidRequest",
    "Item", "NotFound", "PayloadTooLarge", "RateLimited", "RetryPolicy", "Settings", "SignOptions", "SignedUrl",
    "StateStale", "TransportError", "Unauthenticated", "Unavailable", "Viewer",
]  # fmt: skip
