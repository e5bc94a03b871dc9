"""Akamai EdgeAuth / Auth Token 2.0, byte-compatible with the ``akamai-edgeauth`` package.

Token: ``[ip=…~][st=…~]exp=…~[acl=…~][id=…~][data=…~]hmac=<hex>``. URL mode
signs ``~url=<url>`` after the fields without sending it; ACL mode sends
``acl`` (``!``-separated, ``*``/``?`` wildcards). An optional salt is signed,
never sent. With ``escape_early`` ip, id, data and url (not acl) are
``quote_plus``-ed with lower-case escapes. The key file is the hex secret.
The principal's gateway key id travels in ``data``. The verifier reads the
token as sent (the HMAC covers the fields' text, escapes included) and checks
it exactly as the profile signs: its ``algorithm`` (default sha256), its
``salt`` and its ``escape_early``, never another; so one token has one MAC.
``st`` is signed: it is returned as the issue time a link revocation is
compared with (the gateway signs start = issue time). The gateway never signs
an ACL whose path holds ``*``, ``?``, ``!`` or ``~`` (wildcards and
delimiters that would widen or split it), nor a URL-mode path holding ``~``
or ``!``: the signed ``…~url=/a~acl=*`` would equal the message of an ACL
token ``…~url=/a~acl=*~hmac=…`` open to every path. The verifier reads only
the fields a token carries (``ip``, ``st``, ``exp``, ``acl``, ``id``,
``data``, ``hmac``): ``url`` and ``salt`` are signed, never sent.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote_plus, unquote

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import (
    append_query,
    check_ip_exact,
    check_window,
    directory_prefix,
    epoch,
    query_pairs,
    same_text,
    single,
    single_address,
    split_url,
    wildcard_match,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

TOKEN_NAME = "__token__"  # noqa: S105 (a parameter name, not a secret)
_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_ACL_SPECIAL = frozenset("*?!~")
_URL_SPECIAL = frozenset("!~")  # the field separator, and the ACL separator
_SENT_FIELDS = frozenset({"ip", "st", "exp", "acl", "id", "data", "hmac"})


def escape_early(text: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(0).lower(), quote_plus(text))


def generate_token(
    key: bytes,
    *,
    expires: int,
    acl: list[str] | None = None,
    url: str | None = None,
    starts: int | None = None,
    ip: str | None = None,
    session_id: str | None = None,
    data: str | None = None,
    algorithm: str = "sha256",
    salt: str | None = None,
    escape: bool = False,
) -> str:
    if (acl is None) == (url is None):
        raise InvalidInput("an Akamai token is either an ACL token or a URL token")
    esc = escape_early if escape else (lambda text: text)
    fields = [f"ip={esc(ip)}"] if ip else []
    fields += [f"st={starts}"] if starts is not None else []
    fields.append(f"exp={expires}")
    fields += [f"acl={'!'.join(acl)}"] if acl is not None else []
    fields += [f"id={esc(session_id)}"] if session_id else []
    fields += [f"data={esc(data)}"] if data else []
    signed = list(fields) + ([f"url={esc(url)}"] if url is not None else [])
    signed += [f"salt={salt}"] if salt else []
    mac = hmac.new(key, "~".join(signed).encode(), _ALGORITHMS[algorithm]).hexdigest()
    return "~".join([*fields, f"hmac={mac}"])


class AkamaiDialect:
    name = "akamai"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        starts=True,
        ip="one exact address",
        prefix="ACL (acl=/dir/*)",
        cookie=True,
        attribution_field="data",
        revocation="one key (+ a transition key) per property: rotate the key and re-activate; "
        "the gateway's verifier refuses the principal's key id in data at once",
    )

    def describe(self) -> str:
        return "Akamai EdgeAuth 2.0 (__token__): HMAC-SHA256/SHA1/MD5; st, exp, ip, acl or url, id, data"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """The hex secret, as Akamai Property Manager shows it."""
        try:
            secret = binascii.unhexlify(data.strip())
        except (binascii.Error, ValueError):
            raise InvalidInput("an Akamai key file holds an even-length hex string") from None
        return KeyMaterial(key_id or "", KeyAlgorithm.SHARED_SECRET, None, secret)

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        options = request.options
        path = split_url(request.url).path
        token = generate_token(
            key.require_secret(),
            expires=request.expires,
            acl=[_acl_prefix(request.prefix) + "*"] if request.prefix else None,
            url=None if request.prefix else _url_path(path),
            starts=request.starts,
            ip=single_address(request.ip, "Akamai") if request.ip else None,
            data=request.attribution,
            algorithm=_algorithm(options),
            salt=options.get("salt"),
            escape=_escape(options),
        )
        name = options.get("token_name", TOKEN_NAME)
        return Signed(url=append_query(request.url, f"{name}={token}"), cookies={name: token})

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return True  # data is one of the HMAC's fields

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        name = redemption.options.get("token_name", TOKEN_NAME)
        token = single(query_pairs(redemption.url), name) or redemption.cookies.get(name)
        if not token:
            raise VerificationFailed("malformed")
        fields = _fields(token)
        path = split_url(redemption.url).path
        if not _hmac_ok(key.require_secret(), fields, path, redemption.options):
            raise VerificationFailed("bad-signature")
        expires = epoch(fields["exp"])
        starts = epoch(fields["st"]) if "st" in fields else None
        check_window(redemption.now, expires, starts)
        if "acl" in fields and not any(wildcard_match(a, path) for a in fields["acl"].split("!")):
            raise VerificationFailed("outside-prefix")
        # ip and data are escaped only with escape_early: otherwise their text is the value.
        read = unquote if _escape(redemption.options) else str
        if "ip" in fields:
            check_ip_exact(read(fields["ip"]), redemption.client_ip)
        data = fields.get("data")
        return Verified(key_id=None, expires=expires, attribution=read(data) if data else None, issued_at=starts)


def _algorithm(options: Mapping[str, str]) -> str:
    algorithm = options.get("algorithm", "sha256")
    if algorithm not in _ALGORITHMS:
        raise InvalidInput("Akamai algorithm is sha256, sha1 or md5")
    return algorithm


def _escape(options: Mapping[str, str]) -> bool:
    return options.get("escape_early", "false") == "true"


def _acl_prefix(prefix: str) -> str:
    if _ACL_SPECIAL.intersection(directory_prefix(prefix)):
        raise InvalidInput("an Akamai ACL path cannot contain '*', '?', '!' or '~' (wildcards and delimiters)")
    return prefix


def _url_path(path: str) -> str:
    if _URL_SPECIAL.intersection(path):
        raise InvalidInput("an Akamai URL token cannot sign a path containing '~' or '!' (token delimiters)")
    return path


def _fields(token: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in token.split("~"):
        name, sep, value = part.partition("=")
        # url (and salt) are signed, never sent: a presented url= would turn a URL token into an ACL token.
        if not sep or name in fields or name not in _SENT_FIELDS:
            raise VerificationFailed("malformed")
        fields[name] = value
    if "exp" not in fields or "hmac" not in fields or list(fields)[-1] != "hmac":
        raise VerificationFailed("malformed")
    return fields


def _hmac_ok(secret: bytes, fields: dict[str, str], path: str, options: Mapping[str, str]) -> bool:
    """The one MAC the profile's algorithm, salt and escaping give (``generate_token``'s message)."""
    signed = [f"{n}={v}" for n, v in fields.items() if n != "hmac"]
    if "acl" not in fields:
        signed.append(f"url={escape_early(path) if _escape(options) else path}")
    salt = options.get("salt")
    signed += [f"salt={salt}"] if salt else []
    expected = hmac.new(secret, "~".join(signed).encode(), _ALGORITHMS[_algorithm(options)]).hexdigest()
    return same_text(expected, fields["hmac"])
