"""Every dialect's URL and cookie parser, fed mutated signed URLs: a refusal with a reason, never a crash.

Hypothesis (tests/test_dialect_properties.py) shrinks failures but costs about
a millisecond an example; this loop costs microseconds, so a long campaign
reaches ``GATEWAY_FUZZ_EXAMPLES`` inputs per dialect (CI: 300 each). Inputs are
a valid signed URL (and its cookies, where the format has them) with 1-4
random edits: a byte flipped to a printable, percent-escaped, multi-byte or
control character, deleted, duplicated, or a ``&name=value`` pair appended or
moved between path and query. Each must either verify (rare: an edit that
changes nothing the signature covers is allowed to) or raise
VerificationFailed, InvalidInput or UnicodeError, the refusals the verifier
maps to a 403; anything else is a crash at /v1/verify.
"""

from __future__ import annotations

import random

import pytest

from gateway.errors import InvalidInput, VerificationFailed
from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import ATTRIBUTION, Setup, setups
from tests.jwt_strategies import EXAMPLES

SETUPS = setups()
# What Verifier.verify turns into a 403 (UnicodeError: text that is no Unicode, refused as "malformed"; the
# HTTP edge refuses such URIs and drops such cookies before, tests/security/test_cookie_bytes.py).
REFUSALS = (VerificationFailed, InvalidInput, UnicodeError)
NOW = 1_800_000_000
CLIENT = "203.0.113.7"
_ODD = ["%", "%2", "%zz", "%00", "%2e", "%2F", "..", "/", "?", "&", "=", "#", ";", "\\", "~", "*", "!", " ", "+",
        "\x00", "\x7f", "\u00e9", "\uff0e", "\udcff", "\u2028", "\U0001f600", "[", "]", "@", ":"]  # fmt: skip


def _signed(setup: Setup) -> tuple[str, dict[str, str]]:
    request = SignRequest(
        url="https://cdn.example.com/v/a/master.m3u8",
        expires=NOW + 600,
        ip=CLIENT if setup.needs_ip else None,
        prefix="/v/a/" if setup.sign_prefix else None,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION,
        issued_at=NOW,
        options=setup.options,
    )
    signed = setup.dialect.sign(request, setup.key)
    return signed.url, dict(signed.cookies or {})


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(text) + 1)
        action = rng.randrange(6)
        if action == 0 and text:
            text = text[:at] + text[at + 1 :]
        elif action == 1:
            text = text[:at] + rng.choice(_ODD) + text[at:]
        elif action == 2:
            text = text[:at] + chr(rng.randrange(0x20, 0x7F)) + text[at + 1 :]
        elif action == 3 and text:
            start = rng.randrange(len(text))
            text = text[:at] + text[start : start + rng.randint(1, 12)] + text[at:]
        elif action == 4:
            text += f"&{rng.choice(['gw_pfx', 'Expires', 'hmac', 'token', 'acl', 'URLPrefix', 'x'])}={rng.choice(_ODD)}"
        else:
            path, _, query = text.partition("?")
            pairs = query.split("&")
            moved = pairs.pop(rng.randrange(len(pairs))) if pairs and pairs[0] else ""
            text = f"{path};{moved}?{'&'.join(pairs)}" if rng.random() < 0.5 else f"{path}/{moved}?{'&'.join(pairs)}"
    return text


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: s.name)
def test_mutated_urls_and_cookies_are_refused_never_crash(setup: Setup) -> None:
    rng = random.Random(f"dialect-fuzz-{setup.name}")  # reproducible: the seed names the dialect
    url, cookies = _signed(setup)
    outcomes = {"refused": 0, "accepted": 0}
    for _ in range(EXAMPLES):
        mutated_url = _mutate(url, rng)
        mutated_cookies = {k: _mutate(v, rng) if rng.random() < 0.5 else v for k, v in cookies.items()}
        redemption = Redemption(mutated_url, NOW + 30, CLIENT, cookies=mutated_cookies, options=setup.options)
        try:
            setup.dialect.reuse_key(redemption)
            setup.dialect.presented_key_id(redemption)
            setup.dialect.verify(redemption, setup.key)
        except REFUSALS:
            outcomes["refused"] += 1
            continue
        except Exception as exc:  # a crash: name the input that caused it
            crash = f"{setup.name}: {type(exc).__name__}: {exc} for {mutated_url!r} {mutated_cookies!r}"
            raise AssertionError(crash) from None
        outcomes["accepted"] += 1
    assert outcomes["refused"] > EXAMPLES // 2, outcomes  # most edits touch what the signature covers
