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
_SCHEME = r"[A-Za-z0-9+.\-]"
# A URL in free text: a run of scheme characters, "://", then everything up to white space or a quote. A run
# starts only where no scheme character precedes it: a long run without "://" is then tried once, not once per
# character (quadratic time on "a.a.a…", red team round 9), and a scheme glued to "_" or a digit still counts.
_URL = re.compile(rf"(?<!{_SCHEME}){_SCHEME}+://[^\s\"'<>`]+")
# Each "://" and the authority after it (up to the path, query, fragment, a backslash, white space or a quote):
# a URL quoted inside another's query has user information of its own.
_AUTHORITY = re.compile(rf"(?<!{_SCHEME})({_SCHEME}*)://((?:[^/?#\\\s\"'<>`@]*@)+)")
# password=… and sslpassword=… (libpq's query parameters; also the key=value form in free text), and the
# query parameters that carry a bearer secret in the URLs of webhooks, object stores and OAuth. A value runs to
# the next parameter, white space or quote (a comma or semicolon may be part of a password), or is quoted
# (bounded, so that an unclosed quote is not scanned to the end once per name).
_SECRET_NAMES = (
    "(?:ssl|pg)?password", "passwd", "pwd", "passphrase", "token", "access_?token", "refresh_?token", "id_token",
    "auth_?token", "private_token", "api_?token", "api[-_]?key", "key", "secret", "client_?secret", "signature",
    "sig", "hmac", "md5", "wmsauthsign", "wowzatokenhash", "x-amz-signature", "x-amz-security-token",
    "x-goog-signature", "accountkey", "sharedaccesskey", "gw_viewer",
)  # fmt: skip
_SECRET_NAME = re.compile("(?i)" + "|".join(_SECRET_NAMES))
# A name=: the name is a run of name characters (tried once per run: linear time), checked in Python against
# the secret names, each of its suffixes after a "_" or "-" too (gw_sig is a sig); then the value it masks.
_NAME = re.compile(r"(?<![A-Za-z0-9_\-])([A-Za-z0-9_\-]+)\s*=\s*")
_VALUE = re.compile(r"'[^'\n]{0,256}'|\"[^\"\n]{0,256}\"|[^\s&#\"']+")
# The same names as JSON members ("password": "…"), and an Authorization header's credentials.
_JSON_MEMBER = re.compile(r'"([A-Za-z0-9_\-]+)"(\s*:\s*)"[^"\\\n]{0,256}"')
# After "Authorization:", whatever the scheme's credentials; elsewhere, a Bearer or Basic credential of 8
# characters or more, one of them no letter ("bearer token has no key id" is prose).
_AUTHORIZATION = re.compile(
    r"(?i)(\bauthorization\s*:\s*[A-Za-z]+\s+)[A-Za-z0-9._~+/=-]+"
    r"|\b((?:bearer|basic)\s+)(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}"
)
# Text longer than this is cut before it is masked (and said to be): what is shown is for people, and masking
# must not let one request's 256 KiB body hold the event loop.
LONGEST = 8192
# What any text with something to mask holds (or an Authorization scheme's name).
_MARKS = ("://", "=", '"')
# Schemes whose user name is a role, not a credential: shown, so that an operator sees who connects.
_ROLE_SCHEMES = frozenset({"postgres", "postgresql"})


def url(value: str) -> str:
    """``value`` with the user information of each URL in it and any secret parameter masked.

    The user information is what precedes the authority's last ``@`` (the authority ends at the first
    ``/``, ``?``, ``#`` or backslash), so an ``@`` in a path is left alone. A password is masked; a user name
    without one is kept in a database URL (a role name) and masked in any other (there it is the secret). A URL
    with neither is unchanged."""
    return _masked_parameters(_AUTHORITY.sub(_mask_userinfo, value))


def text(value: str) -> str:
    """``value`` with every URL's user information and every secret's value masked (see ``url``); longer than
    ``LONGEST``, cut there first."""
    if len(value) > LONGEST:
        return url(value[:LONGEST]) + f"… ({len(value) - LONGEST} more characters)"
    if not any(mark in value for mark in _MARKS):
        lowered = value.lower()
        if "bearer" not in lowered and "basic" not in lowered:
            return value  # the common case: nothing to look at
    return url(value)


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


def _masked_parameters(value: str) -> str:
    masked = _masked_pairs(value) if "=" in value else value
    if '"' in masked:
        masked = _JSON_MEMBER.sub(_mask_member, masked)
    return _AUTHORIZATION.sub(lambda match: (match.group(1) or match.group(2)) + MASK, masked)


def _is_secret(name: str) -> bool:
    """The name, or its part after any "_" or "-" (no secret name is longer than 32 characters)."""
    if _SECRET_NAME.fullmatch(name):
        return True
    start = max(0, len(name) - 33)
    return any(_SECRET_NAME.fullmatch(name[i + 1 :]) for i in range(start, len(name)) if name[i] in "_-")


def _masked_pairs(value: str) -> str:
    """Each secret name's value masked. A name that is no secret gives up only itself and its "=": its value
    may hold one that is (hdnts=exp=9~acl=/v/*~hmac=…)."""
    shown: list[str] = []
    at = 0
    while found := _NAME.search(value, at):
        secret = _VALUE.match(value, found.end()) if _is_secret(found.group(1)) else None
        shown.append(value[at : found.end()])
        if secret is None:
            at = found.end()
        else:
            shown.append(MASK)
            at = secret.end()
    shown.append(value[at:])
    return "".join(shown)


def _mask_member(match: re.Match[str]) -> str:
    name, colon = match.group(1), match.group(2)
    return f'"{name}"{colon}"{MASK}"' if _is_secret(name) else match.group(0)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)[:-1]  # up to the authority's last "@"
    user, colon, _ = userinfo.partition(":")
    if colon:
        return f"{scheme}://{user}:{MASK}@"
    if scheme.lower() in _ROLE_SCHEMES:
        return match.group(0)
    return f"{scheme}://{MASK}@"  # a user name alone is a bearer key here (a Sentry DSN, a token in a git URL)
