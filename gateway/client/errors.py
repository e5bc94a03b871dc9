"""The client's exceptions: one class per error code the gateway answers with (``{"error": code, "message": …}``).

ApiError                      any error answer; .status, .code, .message, .request_id
├── InvalidRequest            400 invalid_request (and any other 4xx without a class of its own)
├── Unauthenticated           401 unauthenticated: the principal token (or the viewer token) is not valid
├── Forbidden                 403 forbidden, no_active_key, client_certificate_required
├── NotFound                  404 not_found
├── Conflict                  409 conflict
├── PayloadTooLarge           413 payload_too_large
├── RateLimited               429 rate_limited; .retry_after (seconds)   retried
├── Unavailable               503 unavailable: nothing was issued          retried
│   ├── AuditUnavailable      503 audit_unavailable
│   └── StateStale            503 state_stale
└── TransportError            no answer: connection refused or reset, timeout, a body that is not JSON
                                                                             retried
"""

from __future__ import annotations


class ApiError(Exception):
    """The gateway answered with an error (or, for ``TransportError``, did not answer)."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", request_id: str | None = None, retry_after: float = 0
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        # Seconds the gateway asked to wait before retrying (Retry-After), 0 when it said nothing.
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    pass


class Unauthenticated(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class RateLimited(ApiError):
    pass


class Unavailable(ApiError):
    pass


class AuditUnavailable(Unavailable):
    pass


class StateStale(Unavailable):
    pass


class TransportError(ApiError):
    pass


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_request": InvalidRequest,
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "no_active_key": Forbidden,
    "client_certificate_required": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "rate_limited": RateLimited,
    "unavailable": Unavailable,
    "audit_unavailable": AuditUnavailable,
    "state_stale": StateStale,
}
# 502 and 504 come from a proxy in front of a gateway that is restarting: retried like a 503. A 500 is a bug: not.
_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge, 429: RateLimited,
    502: Unavailable, 503: Unavailable, 504: Unavailable,
}  # fmt: skip


def error_for(status: int, code: str) -> type[ApiError]:
    """The class for an error answer: by its code, else by its status."""
    found = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if found is not None:
        return found
    return InvalidRequest if 400 <= status < 500 else ApiError
