"""nginx ``secure_link`` / ``secure_link_md5``: base64url MD5 of a configurable expression.

The expression is nginx's, with the secret written as ``$secret`` (the key
file holds it). Supported variables: ``$secure_link_expires``, ``$uri`` (the
decoded path), ``$remote_addr`` and ``$arg_NAME`` (raw, matched without
regard to case, as nginx does). With ``$arg_gw_kid`` in the expression the
gateway adds ``gw_kid=<key id>`` to each URL and it is signed; without it the
key id is not covered, so the verifier never reads one (and a profile refuses
to start unless marked unattributable).

The default, ``$secure_link_expires $arg_gw_kid $remote_addr $uri $secret``,
is injective: expiry, key id and address can hold no space (a raw space
cannot reach nginx's arguments, and addresses have none), and ``$uri``, the
only value that can, comes last before the fixed secret; so one hashed text
has one reading. (Values joined without separators do not: ``/x.mp4`` from
``127.0.0.1`` and ``/x.mp41`` from ``27.0.0.1`` hash alike.) ``nginx_config``
writes the matching nginx location block.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import unquote

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import (
    append_query,
    check_window,
    epoch,
    query_pairs,
    same_text,
    shared_secret,
    single,
    single_address,
    split_url,
    unsupported,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

DEFAULT_EXPRESSION = "$secure_link_expires $arg_gw_kid $remote_addr $uri $secret"
ATTRIBUTION_ARG = "gw_kid"
_VARIABLE = re.compile(r"\$(secure_link_expires|uri|remote_addr|secret|arg_[A-Za-z0-9_]+)")


def secure_link_hash(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.md5(text.encode()).digest()).rstrip(b"=").decode()  # noqa: S324 (the format is MD5)


@functools.lru_cache(maxsize=64)
def _check_expression(expression: str) -> None:
    unknown = {m.group(0) for m in re.finditer(r"\$\w+", expression)} - {
        m.group(0) for m in _VARIABLE.finditer(expression)
    }
    if unknown:
        raise InvalidInput(f"unsupported variables in the secure_link_md5 expression: {', '.join(sorted(unknown))}")


def _name(match: re.Match[str]) -> str:
    name = match.group(1)
    return name.lower() if name.startswith("arg_") else name  # nginx matches argument names in any case


def render(expression: str, values: dict[str, str]) -> str:
    _check_expression(expression)
    return _VARIABLE.sub(lambda m: values.get(_name(m), ""), expression)


@functools.lru_cache(maxsize=64)
def _referenced_args(expression: str) -> Mapping[str, str]:
    """The arguments the expression hashes: lower-case name -> the spelling it is written in."""
    _check_expression(expression)
    names = (m.group(1)[4:] for m in _VARIABLE.finditer(expression) if m.group(1).startswith("arg_"))
    return MappingProxyType({name.lower(): name for name in names})


def covers_attribution(expression: str) -> bool:
    """True when the expression hashes ``$arg_gw_kid``, so the key id in the URL is signed."""
    return ATTRIBUTION_ARG in _referenced_args(expression)


def nginx_config(expression: str, secret: str, location: str = "/") -> str:
    """The nginx location block that checks URLs signed with this expression and secret."""
    _check_expression(expression)
    if re.search(r'["\\$\s]', secret):
        raise InvalidInput("the secret cannot be written into nginx.conf: it holds a quote, '\\', '$' or white space")
    rendered = expression.replace("$secret", secret)
    return (
        f"location {location} {{\n"
        "    secure_link $arg_md5,$arg_expires;\n"
        f'    secure_link_md5 "{rendered}";\n'
        '    if ($secure_link = "") { return 403; }\n'
        '    if ($secure_link = "0") { return 410; }\n'
        "}\n"
    )


class NginxSecureLinkDialect:
    name = "nginx"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        ip="exact address ($remote_addr)",
        attribution_field="$arg_gw_kid in the expression",
        attribution_option="expression",
        revocation="one secret per expression: change it and reload nginx (old URLs stop at once); "
        "the gateway's verifier refuses the principal's gw_kid at once",
    )

    def describe(self) -> str:
        return "nginx secure_link_md5: MD5 over a configurable expression; expires, $uri, $remote_addr, args"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """The plain secret, exactly as written in secure_link_md5."""
        return shared_secret(data, key_id)

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        expression = request.options.get("expression", DEFAULT_EXPRESSION)
        if request.starts is not None:
            raise unsupported("nginx secure_link", "start time")
        if request.prefix is not None:
            raise unsupported("nginx secure_link", "path prefix")
        url = request.url
        if covers_attribution(expression) and request.attribution:
            url = append_query(url, f"{_referenced_args(expression)[ATTRIBUTION_ARG]}={request.attribution}")
        values = self._values(url, str(request.expires), key, None)
        if "$remote_addr" in expression:
            if not request.ip:
                raise InvalidInput("this secure_link_md5 expression binds $remote_addr: give the client IP")
            values["remote_addr"] = single_address(request.ip, "nginx secure_link")
        digest = secure_link_hash(render(expression, values))
        return Signed(url=append_query(url, f"md5={digest}&expires={request.expires}"))

    def _values(self, url: str, expires: str, key: KeyMaterial, hashed: Mapping[str, str] | None) -> dict[str, str]:
        """Variable values as nginx sets them (``$arg_NAME``: any case, first occurrence).

        When verifying, an argument the hash covers (``hashed``) must appear once and
        spelled as the expression writes it: any other spelling is a second URL.
        """
        values = {"uri": unquote(split_url(url).path), "secure_link_expires": expires}
        values["secret"] = key.require_secret().decode("utf-8", "replace")
        for name, value in query_pairs(url):
            variable = f"arg_{name.lower()}"
            spelled = hashed.get(name.lower()) if hashed is not None else None
            if spelled is not None and (variable in values or name != spelled):
                raise VerificationFailed("malformed")
            values.setdefault(variable, value)
        return values

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return covers_attribution(options.get("expression", DEFAULT_EXPRESSION))

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        expression = redemption.options.get("expression", DEFAULT_EXPRESSION)
        pairs = query_pairs(redemption.url)
        presented, expires_text = single(pairs, "md5"), single(pairs, "expires")
        if presented is None or expires_text is None:
            raise VerificationFailed("malformed")
        hashed = {**_referenced_args(expression), "md5": "md5", "expires": "expires"}
        values = self._values(redemption.url, expires_text, key, hashed)
        values["remote_addr"] = redemption.client_ip or ""
        expected = secure_link_hash(render(expression, values))
        if not same_text(expected, presented):
            # nginx cannot tell a wrong client address from a forged hash: neither can we.
            ip_bound = "$remote_addr" in expression
            raise VerificationFailed("bad-signature-or-wrong-ip" if ip_bound else "bad-signature")
        expires = epoch(expires_text)
        check_window(redemption.now, expires)
        covered = covers_attribution(expression)
        return Verified(
            key_id=None, expires=expires, attribution=values.get(f"arg_{ATTRIBUTION_ARG}") if covered else None
        )
