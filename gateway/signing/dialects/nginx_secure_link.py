"""nginx ``secure_link`` / ``secure_link_md5``: base64url MD5 of a configurable expression.

The expression is nginx's, with the secret written as ``$secret`` (the key
file holds it); the default is ``$secure_link_expires$uri$remote_addr $secret``
(nginx's documented example, whose secret is the word "secret"). Supported
variables: ``$secure_link_expires``, ``$uri`` (the decoded path),
``$remote_addr`` and ``$arg_NAME``. Put ``$arg_gw_kid`` in the expression and
the gateway adds ``gw_kid=<key id>`` to each URL, so it is signed.
``nginx_config`` writes the matching nginx location block.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from urllib.parse import unquote, urlsplit

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
    unsupported,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

DEFAULT_EXPRESSION = "$secure_link_expires$uri$remote_addr $secret"
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


def render(expression: str, values: dict[str, str]) -> str:
    _check_expression(expression)
    return _VARIABLE.sub(lambda m: values.get(m.group(1), ""), expression)


def nginx_config(expression: str, secret: str, location: str = "/") -> str:
    """The nginx location block that checks URLs signed with this expression and secret."""
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
        if f"$arg_{ATTRIBUTION_ARG}" in expression and request.attribution:
            url = append_query(url, f"{ATTRIBUTION_ARG}={request.attribution}")
        values = self._values(url, str(request.expires), key)
        if "$remote_addr" in expression:
            if not request.ip:
                raise InvalidInput("this secure_link_md5 expression binds $remote_addr: give the client IP")
            values["remote_addr"] = single_address(request.ip, "nginx secure_link")
        digest = secure_link_hash(render(expression, values))
        return Signed(url=append_query(url, f"md5={digest}&expires={request.expires}"))

    def _values(self, url: str, expires: str, key: KeyMaterial) -> dict[str, str]:
        values = {"uri": unquote(urlsplit(url).path), "secure_link_expires": expires}
        values["secret"] = key.require_secret().decode("utf-8", "replace")
        values.update({f"arg_{n}": v for n, v in query_pairs(url)})
        return values

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        expression = redemption.options.get("expression", DEFAULT_EXPRESSION)
        pairs = query_pairs(redemption.url)
        presented, expires_text = single(pairs, "md5"), single(pairs, "expires")
        if presented is None or expires_text is None:
            raise VerificationFailed("malformed")
        values = self._values(redemption.url, expires_text, key)
        values["remote_addr"] = redemption.client_ip or ""
        expected = secure_link_hash(render(expression, values))
        if not same_text(expected, presented):
            # nginx cannot tell a wrong client address from a forged hash: neither can we.
            ip_bound = "$remote_addr" in expression
            raise VerificationFailed("bad-signature-or-wrong-ip" if ip_bound else "bad-signature")
        expires = epoch(expires_text)
        check_window(redemption.now, expires)
        return Verified(key_id=None, expires=expires, attribution=single(pairs, ATTRIBUTION_ARG))
