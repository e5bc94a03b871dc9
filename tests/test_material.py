"""Key material (gateway.keys.material): ids, strict base64url, the native primitives and key generation."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.keys import material
from gateway.keys.material import KeyMaterial, b64url, b64url_decode, ed25519_public, generate_secret, public_pem
from gateway.model import CREDENTIAL_ID_PREFIX, KEY_ID_PREFIX, KeyAlgorithm

SEED = bytes(range(32))
MESSAGE = b"GW2\ned25519\ngwk_x\n1\n2\n\n\npath:/v/a.mp4\n"
ED = KeyMaterial("gwk_ed", KeyAlgorithm.ED25519, ed25519_public(SEED), SEED)
HS = KeyMaterial("gwk_hs", KeyAlgorithm.HMAC_SHA256, None, b"k" * 32)


def test_ids_carry_their_prefix_and_twenty_characters_of_the_alphabet() -> None:
    for made, prefix in ((material.new_key_id(), KEY_ID_PREFIX), (material.new_credential_id(), CREDENTIAL_ID_PREFIX)):
        assert made.startswith(prefix)
        body = made[len(prefix) :]
        assert len(body) == 20 and set(body) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert material.new_key_id() != material.new_key_id()


@pytest.mark.parametrize("length", range(1, 40))
def test_b64url_round_trips_every_length(length: int) -> None:
    data = bytes(range(256))[length : 2 * length] or bytes(length)
    text = b64url(data)
    assert "=" not in text and b64url_decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["", "A", "AA==", "AA=", "AB", "A+B_", "A/BC", "AAAAA", "AA AA"],
    ids=["empty", "one-char", "padded", "half-padded", "non-zero-trailing-bits", "plus", "slash", "5-chars", "space"],
)
def test_b64url_decode_refuses_every_other_spelling(text: str) -> None:
    """One byte string, one text: a second spelling of a signature would make URLs malleable."""
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_key_material_is_immutable_and_never_prints_its_secret() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ED.kid = "gwk_other"  # type: ignore[misc]
    assert repr(HS) == "KeyMaterial(kid='gwk_hs', algorithm='hmac-sha256')"
    assert hash(ED) == hash(KeyMaterial(ED.kid, ED.algorithm, ED.public, ED.secret))


def test_ed25519_signs_and_verifies_with_the_public_half_only() -> None:
    signature = ED.sign(MESSAGE)
    assert signature == Ed25519PrivateKey.from_private_bytes(SEED).sign(MESSAGE)
    public_only = KeyMaterial(ED.kid, ED.algorithm, ED.public, None)
    assert public_only.verify(MESSAGE, signature) is True
    assert public_only.verify(MESSAGE + b"x", signature) is False
    assert KeyMaterial(ED.kid, ED.algorithm, None, SEED).verify(MESSAGE, signature) is False  # no public half


def test_hmac_sha256_signs_and_verifies_with_the_secret() -> None:
    signature = HS.sign(MESSAGE)
    assert signature == hmac.new(b"k" * 32, MESSAGE, hashlib.sha256).digest()
    assert HS.verify(MESSAGE, signature) is True
    assert HS.verify(MESSAGE, signature[:-1] + bytes([signature[-1] ^ 1])) is False
    assert HS.verify(MESSAGE + b"x", signature) is False
    assert KeyMaterial(HS.kid, HS.algorithm, None, None).verify(MESSAGE, signature) is False  # no secret


def test_signing_without_the_private_half_is_refused() -> None:
    for key in (KeyMaterial(ED.kid, ED.algorithm, ED.public, None), KeyMaterial(HS.kid, HS.algorithm, None, None)):
        with pytest.raises(ValueError, match=f"^key {key.kid} has no private material here$"):
            key.sign(MESSAGE)
        with pytest.raises(ValueError, match="no private material"):
            key.require_secret()
    assert HS.require_secret() == b"k" * 32


@pytest.mark.parametrize(
    "algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256, KeyAlgorithm.HMAC_SHA1, KeyAlgorithm.SHARED_SECRET]
)
def test_only_the_native_primitives_sign_or_verify_native_urls(algorithm: KeyAlgorithm) -> None:
    """A CDN key holding 32 secret bytes must not pass for an HMAC-SHA256 native key."""
    key = KeyMaterial("gwk_cdn", algorithm, None, b"k" * 32)
    with pytest.raises(ValueError, match=f"^{algorithm.value} keys do not sign native URLs$"):
        key.sign(MESSAGE)
    assert key.verify(MESSAGE, HS.sign(MESSAGE)) is False


def test_generated_ed25519_keys_are_a_seed_and_its_public_key() -> None:
    secret, public = generate_secret(KeyAlgorithm.ED25519)
    assert len(secret) == 32 and public == ed25519_public(secret)
    assert generate_secret(KeyAlgorithm.ED25519)[0] != secret


def test_generated_rsa_keys_are_2048_bit_pkcs8_with_exponent_65537() -> None:
    secret, public = generate_secret(KeyAlgorithm.RSA_2048)
    private = load_der_private_key(secret, None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert (private.key_size, private.public_key().public_numbers().e) == (2048, 65537)
    assert public == material._der_pair(private)[1]


def test_generated_ecdsa_keys_are_p256_pkcs8() -> None:
    secret, public = generate_secret(KeyAlgorithm.ECDSA_P256)
    private = load_der_private_key(secret, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1)
    assert public == material._der_pair(private)[1]


@pytest.mark.parametrize(
    ("algorithm", "length"),
    [(KeyAlgorithm.HMAC_SHA1, 16), (KeyAlgorithm.HMAC_SHA256, 32), (KeyAlgorithm.SHARED_SECRET, 32)],
)
def test_generated_secrets_have_the_documented_length_and_no_public_half(algorithm: KeyAlgorithm, length: int) -> None:
    secret, public = generate_secret(algorithm)
    assert (len(secret), public) == (length, None)


def test_public_pem_for_each_key_type() -> None:
    ed_pem = public_pem(KeyAlgorithm.ED25519, ed25519_public(SEED))
    assert ed_pem is not None
    loaded = load_pem_public_key(ed_pem.encode())
    assert isinstance(loaded, Ed25519PublicKey) and loaded.public_bytes_raw() == ed25519_public(SEED)
    for algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.ECDSA_P256):
        _, public = generate_secret(algorithm)
        assert public is not None
        pem = public_pem(algorithm, public)
        assert pem is not None and pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert public_pem(KeyAlgorithm.HMAC_SHA256, b"k" * 32) is None
    assert public_pem(KeyAlgorithm.HMAC_SHA1, b"k" * 16) is None


# Remembered Ed25519 signatures (issue 18): the memo must give exactly what signing afresh gives, for every
# seed and message, whatever was signed before — never one key's signature for another key, never one
# message's for another — and stay bounded.
_seeds = st.sampled_from([bytes([i]) * 32 for i in range(4)])
_messages = st.binary(max_size=40)


@settings(max_examples=300)
@given(st.lists(st.tuples(_seeds, _messages), min_size=1, max_size=12))
def test_a_remembered_ed25519_signature_is_the_signature(calls: list[tuple[bytes, bytes]]) -> None:
    for seed, message in calls + calls:  # each again with the memo warm
        fresh = Ed25519PrivateKey.from_private_bytes(seed).sign(message)
        assert material.ed25519_sign(seed, message) == fresh
        key = KeyMaterial("gwk_t", KeyAlgorithm.ED25519, ed25519_public(seed), seed)
        assert key.sign(message) == fresh
        assert key.verify(message, key.sign(message))


def test_the_remembered_signatures_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(material, "_MAX_SIGNATURES", 3)
    monkeypatch.setattr(material, "_SIGNATURES", {})
    for n in range(10):
        assert material.ed25519_sign(b"\x07" * 32, bytes([n])) == Ed25519PrivateKey.from_private_bytes(
            b"\x07" * 32
        ).sign(bytes([n]))
        assert len(material._SIGNATURES) <= 3
