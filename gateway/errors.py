"""The gateway's one exception tree.

Every error the gateway raises on purpose derives from ``GatewayError``; the
web layer maps it to an HTTP status and a JSON body in exactly one place
(``gateway.web.middleware``), and the CLI maps it to an exit code.

    GatewayError                    (500 "internal")
    ├── InvalidInput                (400 "invalid_request")
    ├── Unauthenticated             (401 "unauthenticated")
    ├── Forbidden                   (403 "forbidden")
    ├── NotFound                    (404 "not_found")
    ├── Conflict                    (409 "conflict")
    ├── RequestTimeout              (408 "request_timeout"; the body came too slowly)
    ├── PayloadTooLarge             (413 "payload_too_large")
    ├── RateLimited                 (429 "rate_limited", with Retry-After)
    ├── VerificationFailed          (403 "denied"; opaque to the caller,
    │                                the precise reason is kept for the log)
    ├── ConfigError                 (start-up only; names the offending key)
    └── Unavailable                 (503 "unavailable"; fail closed)
        ├── StoreUnavailable
        ├── AuditUnavailable
        └── StateStale              (this process's state view is too old to act on)
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # The precise cause, for the audit log; callers may see less.
        self.reason = reason or self.code


class InvalidInput(GatewayError):
    status = 400
    code = "invalid_request"


class Unauthenticated(GatewayError):
    status = 401
    code = "unauthenticated"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class RequestTimeout(GatewayError):
    """The request body did not arrive within ``server.body_timeout``; the connection is closed."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class RateLimited(GatewayError):
    """An abuse limit tripped (``gateway.limits``); ``retry_after`` whole seconds until a token is back."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, reason: str) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class VerificationFailed(GatewayError):
    """A signed URL was refused. ``reason`` is precise; callers see only 'denied'.

    ``facts``: what the refusal was decided on (the expiry, the signed prefix, the string that was signed),
    for ``gatewayctl explain``; never shown to the caller of /v1/verify.
    """

    status = 403
    code = "denied"

    def __init__(self, reason: str, **facts: object) -> None:
        super().__init__("the signed URL is not valid", reason=reason)
        self.facts = facts


class ConfigError(GatewayError):
    code = "config"


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"


class StoreUnavailable(Unavailable):
    pass


class AuditUnavailable(Unavailable):
    code = "audit_unavailable"


class StateStale(Unavailable):
    code = "state_stale"
