"""Attack: a leading zero on a signed number is a second spelling of the signed URL.

Where a format signs the number rather than its text (native ``gw_exp``, a
CloudFront canned policy's ``Expires``, Bunny's ``expires``, WMSAuth's
``validminutes`` and ``strm_len``), ``01800000300`` and ``1800000300`` sign
alike; a verifier that reads both accepts one signed URL in two spellings,
which caches, logs and deny-lists keyed on the URL text tell apart. Every
verifier reads a number only in its one decimal spelling.
"""

from __future__ import annotations

import base64
import re

import pytest

from gateway.errors import VerificationFailed
from gateway.signing.dialects.base import Redemption, SignRequest
from tests.dialect_fixtures import ATTRIBUTION, Setup, setups

SETUPS = {s.name: s for s in setups()}
NOW = 1_800_000_000
CLIENT = "203.0.113.7"
_NUMBER = re.compile(r"(?<=[?&/~=])([A-Za-z_-]+=)(\d+)(?=[&/~]|$)")


def _sign(setup: Setup, with_start: bool = True) -> str:
    request = SignRequest(
        url="https://cdn.example.com/v/abc/master.m3u8", expires=NOW + 300, ip=CLIENT if setup.needs_ip else None,
        starts=NOW - 10 if with_start and setup.dialect.capabilities.starts else None,
        prefix="/v/abc/" if setup.sign_prefix else None, issued_at=NOW,
        attribution=None if setup.dialect.capabilities.key_id_field else ATTRIBUTION, options=setup.options,
    )  # fmt: skip
    return setup.dialect.sign(request, setup.key).url


def _reason(setup: Setup, url: str) -> str:
    try:
        setup.dialect.verify(Redemption(url, NOW + 30, CLIENT, options=setup.options), setup.key)
    except VerificationFailed as refused:
        return refused.reason
    return "accepted"


@pytest.mark.parametrize("with_start", [True, False], ids=["start", "no-start"])  # CloudFront: custom, canned
@pytest.mark.parametrize("setup", list(SETUPS.values()), ids=lambda s: s.name)
def test_a_leading_zero_on_any_number_in_the_url_is_refused(setup: Setup, with_start: bool) -> None:
    url = _sign(setup, with_start)
    numbers = list(_NUMBER.finditer(url))
    # WMSAuth's numbers are inside its base64 (tested below); a CloudFront custom policy's, inside its JSON.
    assert numbers or setup.name == "nimble" or (with_start and setup.dialect.name == "cloudfront")
    assert _reason(setup, url) == "accepted"
    for number in numbers:
        padded = url[: number.start(2)] + "0" + url[number.start(2) :]
        assert _reason(setup, padded) != "accepted", padded


def _respell_wmsauth(url: str, change: str) -> str:
    head, sign = url.split("wmsAuthSign=")
    text = base64.b64decode(sign).decode()
    return head + "wmsAuthSign=" + base64.b64encode(change.format(text=text).encode()).decode()


@pytest.mark.parametrize(
    "change",
    ["{text}", "{text}&strm_len=0"],
    ids=["as-signed", "strm_len-0-added"],
)
def test_wmsauth_strm_len_zero_is_not_a_second_spelling_of_no_stream(change: str) -> None:
    setup = SETUPS["nimble"]
    request = SignRequest("https://live.example.com/live/s1/playlist.m3u8", NOW + 300, ip=CLIENT, issued_at=NOW)
    url = setup.dialect.sign(request, setup.key).url
    expected = "accepted" if change == "{text}" else "malformed"
    assert _reason(setup, _respell_wmsauth(url, change)) == expected


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("validminutes", r"validminutes=(\d+)"), ("strm_len", r"strm_len=(\d+)")],
)
def test_wmsauth_numbers_inside_the_signature_have_one_spelling(name: str, pattern: str) -> None:
    setup = SETUPS["nimble"]
    url = _sign(setup)
    text = base64.b64decode(url.split("wmsAuthSign=")[1]).decode()
    padded = re.sub(pattern, lambda m: f"{name}=0{m.group(1)}", text)
    assert padded != text
    assert _reason(setup, _respell_wmsauth(url, padded.replace("{", "{{").replace("}", "}}"))) == "malformed"
