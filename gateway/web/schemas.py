"""Every request and response body of the HTTP API, declared once.

The same classes validate what clients send (``gateway.web.parsing``), shape
what the gateway answers, and generate the OpenAPI document
(``gateway.web.openapi``), so the three cannot disagree.

Why msgspec rather than pydantic (measured on this machine, Python 3.11, a
``/v1/sign`` body with a viewer token; best of 7 x 100 000 runs):

    before (json.loads + hand-written checks)       3.7 µs
    strict JSON + msgspec.convert (chosen)          2.7 µs
    strict JSON + pydantic v2 model_validate        3.7 µs
    import + first schema: msgspec 4 ms / +1 MiB RSS, pydantic 65 ms / +9 MiB RSS

Neither library refuses duplicate keys (both keep the last), so bodies go
through ``gateway.strictjson`` first; msgspec then checks types, patterns and
unknown fields without coercing (``"60"`` is not an integer, ``true`` is not 1).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gateway.model import Rendition, Visibility

# check_name's alphabet. JSON Schema regexes (ECMA-262) and Python's re.search
# read "$" differently: Python's also matches before a final newline, so the
# lookahead keeps "id\n" out under both.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}(?!\n)$"
SCHEMA_REF = "#/components/schemas/{name}"
NAME_RULE = "1-128 characters of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, description=NAME_RULE)]
MediaId = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, description="media item id: " + NAME_RULE)]
# Printable ASCII: an address (or CIDR) is checked by the core; this only keeps control bytes out.
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+(?!\n)$")]
ProfileName = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+(?!\n)$")]
Ttl = Annotated[int, msgspec.Meta(ge=1, le=7 * 86400, description="seconds; at most signing.max_ttl")]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
StoragePath = Annotated[str, msgspec.Meta(min_length=1, max_length=2048, description="canonical path, e.g. /v/a.m3u8")]
RenditionPaths = Annotated[
    dict[Rendition, StoragePath],
    msgspec.Meta(min_length=1, extra_json_schema={"propertyNames": {"enum": [r.value for r in Rendition]}}),
]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused by name (a misspelt field is an error, not ignored)."""


class _Out(msgspec.Struct, kw_only=True):
    """A response body; optional fields are UNSET (left out), never null."""


# ---- requests


class AssertedViewer(_Strict):
    """A viewer the backend vouches for itself (needs ``sign:on-behalf``)."""

    id: Name
    workspaces: list[Name] = []


class SignItem(_Strict, kw_only=True):
    """``form``: where a prefix token travels: the query (``?gw_…``) or a path segment (``/_t/<token>/…``, native
    profiles), which relative HLS/DASH playlist URLs inherit."""

    media_id: MediaId
    rendition: Rendition
    ttl: Ttl | None = None
    client_ip: Address | None = None
    scope: Literal["path", "prefix"] = "path"
    form: Literal["query", "path"] = "query"
    profile: ProfileName | None = None


class SignRequest(SignItem, kw_only=True):
    """POST /v1/sign: one item for one viewer (``viewer_token`` or ``viewer``, not both)."""

    viewer_token: NonEmpty | None = None
    viewer: AssertedViewer | None = None
    viewer_ip: Address | None = None


class BatchRequest(_Strict, kw_only=True):
    """POST /v1/sign/batch: up to ``signing.batch_max_items`` items for one viewer."""

    items: Annotated[list[SignItem], msgspec.Meta(min_length=1)]
    profile: ProfileName | None = None
    viewer_token: NonEmpty | None = None
    viewer: AssertedViewer | None = None
    viewer_ip: Address | None = None


class MediaRequest(_Strict):
    """PUT /v1/media/{media_id}. ``prefixes``: the directory each rendition's prefix-scoped URLs cover
    (omitted: a directory named after the item, ``/v/<id>/``, when nothing else lies in it; ``{}``: none)."""

    owner: Name
    workspace: Name
    visibility: Visibility
    renditions: RenditionPaths
    prefixes: dict[Rendition, Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]] | None = None


class ExplainRequest(_Strict):
    """POST /v1/explain: a signed URL as the viewer presented it (absolute, or the path and query nginx sees)."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=16384)]
    profile: ProfileName | None = None
    client_ip: Address | None = None


class RevokeLinksRequest(_Strict):
    """POST /v1/media/{media_id}/revoke-links: every URL issued for the item until now stops verifying."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


# ---- responses


class Error(_Out):
    """Every error: a stable machine-readable code and a human-readable message."""

    error: str
    message: str


class Issued(_Out, kw_only=True):
    media_id: str
    rendition: Rendition
    status: Literal[200] = 200
    url: str
    expires_at: int
    kid: str
    issuance_id: str
    profile: str
    cookies: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class Refused(_Out):
    """One batch item that was refused: its own status and error, as the whole call would have had."""

    media_id: str
    rendition: Rendition
    status: int
    error: str
    message: str


# Told apart by "status"; msgspec draws a union of structs only when it is tagged, so this one is drawn here.
_ISSUED_OR_REFUSED = {"items": {"anyOf": [{"$ref": SCHEMA_REF.format(name=n)} for n in ("Issued", "Refused")]}}


class BatchResponse(_Out):
    results: Annotated[list[Any], msgspec.Meta(extra_json_schema=_ISSUED_OR_REFUSED)]


class Media(_Out):
    id: str
    owner: str
    workspace: str
    visibility: Visibility
    renditions: dict[Rendition, str]
    prefixes: dict[Rendition, str]
    updated_at: float
    links_revoked_at: float | None


class VerifyAllowed(_Out):
    status: Literal["allow"]
    kid: str
    expires_at: int


class Explained(_Out):
    """Why /v1/verify would refuse the URL now (``reason``, one of the verifier's), or that it would allow it."""

    verdict: Literal["accepted", "refused"]
    reason: str
    profile: str
    summary: str
    details: list[str]
    facts: dict[str, Any]


class Status(_Out):
    status: str


class Jwk(_Out):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class Jwks(_Out):
    keys: list[Jwk]


# Drawn in the OpenAPI components although no route names them directly (BatchResponse's union refers to them).
REFERENCED_ONLY = (Issued, Refused)
