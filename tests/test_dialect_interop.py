"""Interop: our URLs equal what the CDNs' own libraries produce, and verify with the public key."""

from __future__ import annotations

import datetime as dt
import random
import string

import pytest
from akamai.edgeauth import EdgeAuth
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.signing.dialects import akamai
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.dialects.cloudfront import CloudFrontDialect, custom_policy
from tests.dialect_fixtures import VECTORS

KEY_PAIR_ID = "K2JCJMDEHXQW5F"
PEM = (VECTORS / "cloudfront_test_key.pem").read_bytes()
PRIVATE = load_pem_private_key(PEM, None)
CF = CloudFrontDialect()
KEY = CF.load_key(PEM, KEY_PAIR_ID)
PUBLIC_ONLY = KeyMaterial(KEY.kid, KEY.algorithm, KEY.public, None)
# CloudFront's default hash is SHA-1: the interop check must use it too.
BOTO = CloudFrontSigner(KEY_PAIR_ID, lambda message: PRIVATE.sign(message, padding.PKCS1v15(), hashes.SHA1()))  # noqa: S303


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


url_paths = st.lists(
    st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=10), min_size=1, max_size=3
)
queries = st.one_of(st.just(""), st.text(string.ascii_lowercase, min_size=1, max_size=5).map(lambda q: f"?{q}=1&z=2"))
expiries = st.integers(min_value=1_600_000_000, max_value=2_000_000_000)


@settings(max_examples=25, deadline=None)
@given(parts=url_paths, query=queries, expires=expiries)
def test_canned_policy_equals_botocore(parts: list[str], query: str, expires: int) -> None:
    url = "https://d111111abcdef8.cloudfront.net/" + "/".join(parts) + query
    ours = CF.sign(SignRequest(url, expires), KEY).url
    assert ours == BOTO.generate_presigned_url(url, date_less_than=_utc(expires))
    assert CF.verify(Redemption(ours, expires - 1), PUBLIC_ONLY).expires == expires


@settings(max_examples=25, deadline=None)
@given(parts=url_paths, expires=expiries, octets=st.tuples(*[st.integers(0, 255)] * 4), bits=st.integers(8, 32))
def test_custom_policy_equals_botocore(parts: list[str], expires: int, octets: tuple[int, ...], bits: int) -> None:
    url = "https://d111111abcdef8.cloudfront.net/" + "/".join(parts)
    network = f"{'.'.join(map(str, octets))}/{bits}"
    starts = expires - 3600
    request = SignRequest(url, expires, starts=starts, ip=network)
    ours = CF.sign(request, KEY).url
    import ipaddress

    canonical = str(ipaddress.ip_network(network, strict=False))
    policy = BOTO.build_policy(url, _utc(expires), date_greater_than=_utc(starts), ip_address=canonical)
    assert policy == custom_policy(url, expires, starts, canonical)
    assert ours == BOTO.generate_presigned_url(url, policy=policy)
    client = str(ipaddress.ip_network(canonical).network_address)
    assert CF.verify(Redemption(ours, starts + 1, client), PUBLIC_ONLY)


def test_wildcard_question_mark_in_the_policy_does_not_break_the_query_string() -> None:
    """botocore #3377: a '?' wildcard in the resource makes botocore append '&' to a URL with no query."""
    url = "https://d111111abcdef8.cloudfront.net/private/file1.jpg"
    request = SignRequest(
        url,
        1_900_000_000,
        options={"policy_resource": "https://d111111abcdef8.cloudfront.net/private/file?.jpg"},
    )
    ours = CF.sign(request, KEY).url
    assert ours.startswith(url + "?Policy=")
    assert CF.verify(Redemption(ours, 1_800_000_000), PUBLIC_ONLY)
    other = ours.replace("file1.jpg", "file22.jpg")
    with pytest.raises(VerificationFailed, match="not valid"):
        CF.verify(Redemption(other, 1_800_000_000), PUBLIC_ONLY)


def test_ecdsa_p256_signs_and_verifies_with_the_public_key_only() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private_pem = ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public_pem = ec_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    url = CF.sign(SignRequest("https://d1.cloudfront.net/a.m3u8", 1_900_000_000), CF.load_key(private_pem, "K1EC")).url
    assert CF.verify(Redemption(url, 1_800_000_000), CF.load_key(public_pem, "K1EC"))
    assert len(url) < 300  # the point of ECDSA: much shorter than RSA URLs


def test_ipv6_is_refused_for_cloudfront_policies() -> None:
    with pytest.raises(Exception, match="IPv6"):
        CF.sign(SignRequest("https://d1.cloudfront.net/a", 1_900_000_000, ip="2001:db8::1"), KEY)


tokens_text = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=8, max_size=32),
    expires=st.integers(1_600_000_000, 2_000_000_000),
    window=st.one_of(st.none(), st.integers(1, 86_400)),
    ip=st.one_of(st.none(), st.ip_addresses(v=4).map(str)),
    session_id=st.one_of(st.none(), tokens_text),
    data=st.one_of(st.none(), tokens_text),
    algorithm=st.sampled_from(["sha256", "sha1", "md5"]),
    escape=st.booleans(),
    salt=st.one_of(st.none(), tokens_text),
    path=st.lists(tokens_text, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
    acl=st.booleans(),
)
def test_akamai_tokens_equal_the_official_package(
    key: bytes, expires: int, window: int | None, ip: str | None, session_id: str | None, data: str | None,
    algorithm: str, escape: bool, salt: str | None, path: str, acl: bool,
) -> None:  # fmt: skip
    starts = expires - window if window else None
    official = EdgeAuth(
        key=key.hex(), algorithm=algorithm, salt=salt, ip=ip, payload=data, session_id=session_id,
        start_time=starts, end_time=expires, escape_early=escape,
    )  # fmt: skip
    expected = official.generate_acl_token(path + "/*") if acl else official.generate_url_token(path)
    scope = {"acl": [path + "/*"]} if acl else {"url": path}
    ours = akamai.generate_token(
        key, expires=expires, starts=starts, ip=ip, session_id=session_id, data=data,
        algorithm=algorithm, salt=salt, escape=escape, **scope,
    )  # fmt: skip
    assert ours == expected


def test_akamai_dialect_verifies_official_tokens_and_refuses_tampering() -> None:
    secret = bytes.fromhex("eee7e9157f81b2f6d471bf2c")
    official = EdgeAuth(key=secret.hex(), end_time=1_900_000_000, payload="gwk_abc", ip="198.51.100.4")
    token = official.generate_acl_token("/hls/stream1/*")
    dialect = akamai.AkamaiDialect()
    key = dialect.load_key(secret.hex().encode(), None)
    redemption = Redemption(f"https://a.example/hls/stream1/seg1.ts?__token__={token}", 1_800_000_000, "198.51.100.4")
    assert dialect.verify(redemption, key).attribution == "gwk_abc"
    for url, ip in [
        (redemption.url.replace("stream1/seg", "stream2/seg"), "198.51.100.4"),
        (redemption.url, "198.51.100.5"),
        (redemption.url.replace("gwk_abc", "gwk_abd"), "198.51.100.4"),
    ]:
        with pytest.raises(VerificationFailed):
            dialect.verify(Redemption(url, 1_800_000_000, ip), key)


def test_random_cloudfront_urls_with_random_keys_verify() -> None:
    rng = random.Random(7)
    for _ in range(5):
        url = "https://d2.cloudfront.net/" + "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
        signed = CF.sign(SignRequest(url, 1_900_000_000), KEY).url
        assert CF.verify(Redemption(signed, 1_800_000_000), PUBLIC_ONLY)
