"""Nimble Streamer / WMSPanel WMSAuth hotlink protection (``wmsAuthSign``).

hash_value = base64(MD5(ip + key + server_time + validminutes [+ signed_stream]));
wmsAuthSign = base64("server_time=<M/D/YYYY h:mm:ss AM|PM>&hash_value=…&validminutes=N
[&strm_len=len(signed_stream)]"). Times are UTC; validity is whole minutes from
server_time. WMSAuth has no field for extra data, so a WMSAuth URL cannot
say which principal signed it: revocation is rotating the rule's password,
and the gateway's own verifier refuses WMSAuth URLs (it could not enforce a
key revocation on them). ``wmsAuthSign`` is accepted only as canonical
base64, read as sent, with each of its fields exactly once, and its numbers
without leading zeros (the hash covers the number, not its text).
``server_time`` is hashed: it is returned as the issue time (the gateway
signs server_time = issue time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects._common import (
    append_query,
    check_window,
    decimal,
    query_pairs,
    same_text,
    shared_secret,
    single,
    single_address,
    split_url,
)
from gateway.signing.dialects.base import Capabilities, Redemption, Signed, SignRequest, Verified

_FORMATS = ("%m/%d/%Y %I:%M:%S %p",)
_FIELDS = frozenset({"server_time", "hash_value", "validminutes", "strm_len"})


def server_time(moment: int) -> str:
    """PHP's ``n/j/Y g:i:s A``: no leading zeros (the official PHP sample)."""
    t = datetime.fromtimestamp(moment, UTC)
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {'AM' if t.hour < 12 else 'PM'}"


def parse_server_time(text: str) -> int:
    try:
        return int(datetime.strptime(text, _FORMATS[0]).replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise VerificationFailed("malformed") from None


def hash_value(ip: str, key: str, time_text: str, minutes: int, signed_stream: str = "") -> str:
    digest = hashlib.md5(f"{ip}{key}{time_text}{minutes}{signed_stream}".encode()).digest()  # noqa: S324
    return base64.b64encode(digest).decode()


def auth_sign(time_text: str, digest: str, minutes: int, signed_stream: str | None) -> str:
    text = f"server_time={time_text}&hash_value={digest}&validminutes={minutes}"
    if signed_stream is not None:
        text += f"&strm_len={len(signed_stream)}"
    return base64.b64encode(text.encode()).decode()


class NimbleDialect:
    name = "nimble"
    capabilities = Capabilities(
        key_types=(KeyAlgorithm.SHARED_SECRET,),
        starts=True,
        expiry_step=60,
        ip="one exact address (required)",
        prefix="stream-name prefix",
        revocation="one password per WMSAuth rule: change it (old URLs stop at once); "
        "no signed field names the principal, so per-key revocation is not possible",
    )

    def describe(self) -> str:
        return "Nimble Streamer WMSAuth (wmsAuthSign): MD5; server_time, validminutes, client IP, stream"

    def load_key(self, data: bytes, key_id: str | None) -> KeyMaterial:
        """The plain WMSAuth rule password."""
        return shared_secret(data, key_id)

    def sign(self, request: SignRequest, key: KeyMaterial) -> Signed:
        if not request.ip:
            raise InvalidInput("WMSAuth binds the viewer's IP address: give the client IP")
        ip = single_address(request.ip, "WMSAuth")
        start = request.starts if request.starts is not None else request.issued_at
        if start is None:
            raise InvalidInput("WMSAuth needs the issue time (server_time)")
        minutes = math.ceil((request.expires - start) / 60)
        if minutes < 1:
            raise InvalidInput("WMSAuth validity is at least one minute")
        stream = _signed_stream(request)
        time_text = server_time(start)
        digest = hash_value(ip, key.require_secret().decode("utf-8", "replace"), time_text, minutes, stream or "")
        sign = auth_sign(time_text, digest, minutes, stream)
        return Signed(url=append_query(request.url, f"wmsAuthSign={sign}"))

    def presented_key_id(self, redemption: Redemption) -> str | None:
        return None

    def reuse_key(self, redemption: Redemption) -> str | None:
        return None  # every verification stands for its exact URL

    def attribution_covered(self, options: Mapping[str, str]) -> bool:
        return False  # WMSAuth has no field for the principal

    def verify(self, redemption: Redemption, key: KeyMaterial) -> Verified:
        pairs = query_pairs(redemption.url)
        fields = _decode_sign(single(pairs, "wmsAuthSign"))
        minutes = _minutes(fields.get("validminutes", ""))
        stream = _stream_for(redemption.url, fields.get("strm_len"))
        secret = key.require_secret().decode("utf-8", "replace")
        time_text = fields.get("server_time", "")
        expected = hash_value(redemption.client_ip or "", secret, time_text, minutes, stream)
        if not same_text(expected, fields.get("hash_value", "")):
            raise VerificationFailed("bad-signature-or-wrong-ip")
        start = parse_server_time(time_text)
        check_window(redemption.now, start + minutes * 60, start)
        return Verified(key_id=None, expires=start + minutes * 60, issued_at=start)


def _signed_stream(request: SignRequest) -> str | None:
    """The stream-name prefix the URL is valid for (the path's first characters)."""
    if request.prefix == "":
        raise InvalidInput("a WMSAuth stream prefix cannot be empty")
    if request.prefix is not None and not split_url(request.url).path.startswith(request.prefix):
        raise InvalidInput("the URL does not lie under the requested prefix")
    return request.prefix


def _decode_sign(value: str | None) -> dict[str, str]:
    if not value:
        raise VerificationFailed("malformed")
    try:
        raw = base64.b64decode(value, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise VerificationFailed("malformed") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise VerificationFailed("malformed")  # non-zero padding bits: a second spelling
    pairs = [p.partition("=")[::2] for p in text.split("&")]
    fields = dict(pairs)
    if len(fields) != len(pairs) or not fields.keys() <= _FIELDS:
        raise VerificationFailed("malformed")
    return fields


def _minutes(text: str) -> int:
    return decimal(text, max_digits=7)


def _stream_for(url: str, strm_len: str | None) -> str:
    """The signed stream: the first strm_len characters of the requested path."""
    if strm_len is None:
        return ""
    length = decimal(strm_len, max_digits=5)
    if length == 0:
        raise VerificationFailed("malformed")  # hashes as no strm_len at all: a second spelling
    path = split_url(url).path
    if length > len(path):
        raise VerificationFailed("outside-prefix")
    return path[:length]
