"""Secrets out of everything shown: the password of a URL is ``***`` in output, logs and error messages.

A database URL carries its password (``postgresql://user:PASSWORD@host/db``,
or ``?password=``), and so may a webhook, KMS or S3 endpoint URL; a URL's
query may carry a token or signature (``?token=``, ``?access_token=``,
``X-Amz-Signature=``...), masked the same way; and a chat webhook's path is
itself its secret (``https://hooks.slack.com/services/T0/B0/SECRET``):
``without_path`` cuts it off where such a URL could be quoted. The code
that shows a URL shows ``url(value)``; as a net under that rule, the places
where text leaves the gateway (``gatewayctl``'s output and error lines, log
lines, HTTP error bodies) pass it through ``text``, which masks the password
of every URL it finds in free text, whoever wrote it (a driver's exception
message included). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# A URL in free text: a scheme, "://", then everything up to white space or a quote.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
# password=… and sslpassword=… (libpq's query parameters; also the key=value form in free text), and the
# query parameters that carry a bearer secret in the URLs of webhooks, object stores and OAuth.
# A name counts after any non-alphanumeric (so gw_sig's sig, X-Amz-Signature's signature); a value runs to the
# next parameter, white space or quote (a comma or semicolon may be part of a password).
_SECRET_NAMES = (
    "(?:ssl)?password", "passwd", "pwd", "token", "access_token", "refresh_token", "id_token", "auth_token",
    "private_token", "api[-_]?key", "key", "secret", "client_secret", "signature", "sig", "hmac", "md5",
    "wmsauthsign", "wowzatokenhash", "x-amz-signature", "x-amz-security-token", "x-goog-signature",
)  # fmt: skip
# Schemes whose user name is a role, not a credential: shown, so that an operator sees who connects.
_ROLE_SCHEMES = frozenset({"postgres", "postgresql"})
_PASSWORD_PARAMETER = re.compile(r"(?i)((?<![A-Za-z0-9])(?:" + "|".join(_SECRET_NAMES) + r")\s*=\s*)([^\s&#\"']+)")


def url(value: str) -> str:
    """``value`` with the password of its user information and any password parameter masked.

    The user information is what precedes the authority's last ``@`` (the authority ends at the first
    ``/``, ``?`` or ``#``), so an ``@`` in a path is left alone. A user name without a password is kept in a
    database URL (a role name) and masked in any other (there it is the secret). A URL with neither is
    unchanged."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return _PASSWORD_PARAMETER.sub(_mask_parameter, value)
    end = min((i for i in (rest.find(c) for c in "/?#\\") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if at and colon:
        authority = f"{user}:{MASK}@{host}"
    elif at and scheme.lower() not in _ROLE_SCHEMES:
        authority = f"{MASK}@{host}"  # a user name alone is a bearer key here (a Sentry DSN, a token in a git URL)
    return scheme + sep + authority + _PASSWORD_PARAMETER.sub(_mask_parameter, tail)


def text(value: str) -> str:
    """``value`` with every URL's password and every secret parameter's value masked (see ``url``)."""
    if "://" not in value and "=" not in value:  # the common case: nothing to look at
        return value
    return _PASSWORD_PARAMETER.sub(_mask_parameter, _URL.sub(lambda match: url(match.group(0)), value))


def without_path(value: str) -> str:
    """``text(value)`` with every URL in it cut to its scheme and authority, the rest ``/***``: for text that may
    quote a URL whose path is a secret (a chat webhook's), as a delivery error quotes its endpoint."""
    return text(_URL.sub(lambda match: _origin(match.group(0)), value))


def _origin(value: str) -> str:
    scheme, _, rest = value.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#\\") if i >= 0), default=len(rest))
    return url(f"{scheme}://{rest[:end]}") + (f"/{MASK}" if rest[end:] not in ("", "/") else rest[end:])


def data(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with ``text`` applied to every string in it."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {key: data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [data(item) for item in value]
    return value


def _mask_parameter(match: re.Match[str]) -> str:
    return match.group(1) + MASK
