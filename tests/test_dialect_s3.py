"""The s3 dialect: SigV4 presigned GET URLs, equal to boto3's, verified by the gateway, fetched from moto's S3."""

from __future__ import annotations

import asyncio
import calendar
import datetime
import json
import string
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import boto3
import botocore.auth
import pytest
from aiohttp.test_utils import TestClient
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm, Permission, Rendition, Visibility
from gateway.services import open_services
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.dialects.s3 import S3Dialect, signature
from gateway.web.app import create_app
from tests.aws_support import client
from tests.support import ADMIN, Clock, World, init_data_dir

S3 = S3Dialect()
ACCESS_KEY, SECRET = "AKIAGATEWAYEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KEY = KeyMaterial(ACCESS_KEY, KeyAlgorithm.SHARED_SECRET, None, SECRET.encode())
ISSUED = 1_800_000_000  # 2027-01-15T08:00:00Z
KID = "gwk_s3testkid0000000000"


def _request(url: str = "https://media.s3.eu-west-1.amazonaws.com/v/a%20b/%C3%BC.mp4", **kw: object) -> SignRequest:
    fields: dict[str, object] = {"expires": ISSUED + 300, "starts": ISSUED, "attribution": KID,
                                 "options": {"region": "eu-west-1"}, **kw}  # fmt: skip
    return SignRequest(url, **fields)  # type: ignore[arg-type]


def _verify(url: str, now: float = ISSUED + 30, region: str = "eu-west-1") -> str | None:
    return S3.verify(Redemption(url, now, options={"region": region}), KEY).attribution


def test_the_signature_matches_the_aws_documentation_example() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)", the example GET of test.txt.
    params = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
    ]
    found = signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524T000000Z", "us-east-1", "/test.txt",
                      params, "examplebucket.s3.amazonaws.com")  # fmt: skip
    assert found == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def _at_issue_time() -> mock._patch[mock.MagicMock]:
    """botocore reads the wall clock when it signs: hold it at ISSUED."""
    moment = datetime.datetime.fromtimestamp(ISSUED, datetime.UTC).replace(tzinfo=None)
    return mock.patch.object(botocore.auth, "get_current_datetime", return_value=moment)


@pytest.mark.parametrize(
    ("endpoint", "addressing", "path"),
    [
        ("https://s3.eu-west-1.amazonaws.com", "virtual", "/v/a%20b/%C3%BC.mp4"),
        ("http://127.0.0.1:9000", "path", "/media/v/intro/master.m3u8"),
    ],
)
def test_urls_are_byte_for_byte_what_boto3_generate_presigned_url_writes(
    endpoint: str, addressing: str, path: str
) -> None:
    boto = boto3.client("s3", region_name="eu-west-1", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET,
                        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": addressing}))  # fmt: skip
    key = path.split("/", 2)[2] if addressing == "path" else path[1:]
    with _at_issue_time():
        theirs = boto.generate_presigned_url("get_object", Params={"Bucket": "media", "Key": _unquoted(key)},
                                             ExpiresIn=300)  # fmt: skip
    base = "https://media.s3.eu-west-1.amazonaws.com" if addressing == "virtual" else endpoint
    assert S3.sign(_request(base + path, attribution=None), KEY).url == theirs


def _unquoted(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def test_the_signed_key_id_is_a_parameter_sigv4_covers_as_botocore_signs_it() -> None:
    url = "https://media.s3.eu-west-1.amazonaws.com/v/intro.mp4"
    request = AWSRequest(method="GET", url=f"{url}?gw_kid={KID}")
    with _at_issue_time():
        signer = botocore.auth.S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET), "s3", "eu-west-1", expires=300)
        signer.add_auth(request)
    assert S3.sign(_request(url), KEY).url == request.url
    assert _verify(request.url) == KID


def _tampered(url: str, old: str, new: str) -> str:
    assert old in url
    return url.replace(old, new, 1)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda u: _tampered(u, KID, "gwk_someoneelse00000000"), "bad-signature"),  # attribution is signed
        (lambda u: _tampered(u, "/v/a%20b/", "/v/a%20c/"), "bad-signature"),
        (lambda u: _tampered(u, "X-Amz-Expires=300", "X-Amz-Expires=900"), "bad-signature"),
        (lambda u: _tampered(u, "%2Feu-west-1%2F", "%2Fus-east-1%2F"), "wrong-scope"),
        (lambda u: _tampered(u, "%2F20270115%2F", "%2F20270116%2F"), "wrong-scope"),
        (lambda u: _tampered(u, ACCESS_KEY, "AKIAOTHERKEYEXAMPLE"), "unknown-key"),
        (lambda u: u + "&X-Amz-Security-Token=abc", "unknown-key"),
        (lambda u: u.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Brange"), "malformed"),
        (lambda u: u.replace("gw_kid=", "gw%5Fkid="), "malformed"),  # a second spelling of the same parameter
        (lambda u: u + f"&gw_kid={KID}", "malformed"),  # repeated
        (lambda u: u[:-64] + u[-64:].upper(), "malformed"),
        (lambda u: u.replace("X-Amz-Expires=300", "X-Amz-Expires=0300"), "malformed"),
        (lambda u: u.replace("X-Amz-Expires=300", "X-Amz-Expires=604801"), "malformed"),
        (lambda u: u.replace("20270115T080000Z", "20270132T080000Z"), "malformed"),
    ],
)
def test_the_verifier_refuses_each_change_for_its_reason(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    url = S3.sign(_request(), KEY).url
    assert _verify(url) == KID
    with pytest.raises(VerificationFailed) as refused:
        _verify(change(url))
    assert refused.value.reason == reason


def test_the_validity_window_is_x_amz_date_plus_x_amz_expires() -> None:
    url = S3.sign(_request(), KEY).url
    verified = S3.verify(Redemption(url, ISSUED, options={"region": "eu-west-1"}), KEY)
    assert (verified.issued_at, verified.expires) == (ISSUED, ISSUED + 300)  # the issue time is signed
    for now, reason in ((ISSUED - 1, "not-yet-valid"), (ISSUED + 300, "expired")):
        with pytest.raises(VerificationFailed) as refused:
            _verify(url, now=now)
        assert refused.value.reason == reason
    with pytest.raises(VerificationFailed) as refused:
        _verify(url, region="us-east-1")  # the profile's region is part of the credential scope
    assert refused.value.reason == "wrong-scope"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request(ip="203.0.113.7"), "cannot restrict by client IP"),
        (_request(prefix="/v/"), "cannot restrict by path prefix"),
        (_request("https://b.s3.amazonaws.com/v/a.mp4?versionId=1"), "without a query"),
        (_request("https://b.s3.amazonaws.com/v/a:b.mp4"), "percent-encoded once"),
        (_request(expires=ISSUED + 7 * 86400 + 1), "1 second to 7 days"),
        (_request(options={"region": "EU West"}), "must be an AWS region name"),
    ],
)
def test_what_s3_presigned_urls_cannot_do_is_a_clear_400(request_: SignRequest, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        S3.sign(request_, KEY)


def test_the_key_file_is_an_iam_access_key() -> None:
    inner = {"UserName": "gw", "AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET, "Status": "Active"}
    created = {"AccessKey": inner}
    for form in (created, created["AccessKey"]):
        loaded = S3.load_key(json.dumps(form).encode(), None)
        assert (loaded.kid, loaded.secret) == (ACCESS_KEY, SECRET.encode())
    with pytest.raises(InvalidInput, match="not an IAM access key"):
        S3.load_key(b"AKIA:secret", None)
    with pytest.raises(InvalidInput, match="holds access key"):
        S3.load_key(json.dumps(created).encode(), "AKIAOTHER")


segment = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None)
@given(path=paths, position=st.integers(min_value=0), replacement=st.sampled_from(string.printable[:94]))
def test_any_single_character_change_after_the_host_is_refused(path: str, position: int, replacement: str) -> None:
    url = S3.sign(_request("https://media.s3.eu-west-1.amazonaws.com" + path), KEY).url
    assert _verify(url) == KID
    start = len("https://media.s3.eu-west-1.amazonaws.com")
    index = start + position % (len(url) - start)
    if url[index] == replacement:
        return
    with pytest.raises((VerificationFailed, InvalidInput)):
        _verify(url[:index] + replacement + url[index + 1 :])


# --- as a profile, against moto's S3 -------------------------------------------------------------


@pytest.fixture
async def s3_deployment(
    tmp_path: Path,
    moto_endpoint: str,
    aiohttp_client,  # type: ignore[no-untyped-def]
) -> AsyncIterator[tuple[World, TestClient, str]]:
    s3 = client("s3", moto_endpoint)
    s3.create_bucket(Bucket="media")
    s3.put_object(Bucket="media", Key="v/m1/video.mp4", Body=b"the video bytes")
    await asyncio.to_thread(init_data_dir, tmp_path)
    (tmp_path / "keys" / "profiles").mkdir()
    iam_key = {"AccessKey": {"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET}}
    (tmp_path / "keys" / "profiles" / "s3.json").write_text(json.dumps(iam_key))
    (tmp_path / "keys" / "profiles" / "s3.json").chmod(0o600)
    with (tmp_path / "gateway.toml").open("a") as config_file:
        config_file.write(f"""
[profiles.s3]
dialect = "s3"
base_url = "{moto_endpoint}/media"
secret_file = "keys/profiles/s3.json"
options = {{ region = "us-east-1" }}

[verify]
profiles = ["native", "s3"]
""")
    clock = Clock(float(int(time.time())))  # a real moment: the URL is fetched from a server
    services = await open_services(load_config(tmp_path, environ={}), clock=clock)
    world = World(services, clock)
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await services.admin.put_media(ADMIN, "m1", "alice", "w1", Visibility.UNLISTED,
                                   {Rendition.VIDEO: "/v/m1/video.mp4"}, clock())  # fmt: skip
    app_client = await aiohttp_client(create_app(services, close_services=False))
    yield world, app_client, moto_endpoint
    await app_client.close()  # the app's shutdown uses the services: close it first
    await services.close()


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


async def test_an_issued_s3_url_fetches_the_object_and_obeys_revocation_at_the_verifier(
    s3_deployment: tuple[World, TestClient, str],
) -> None:
    world, http, endpoint = s3_deployment
    body = {"media_id": "m1", "rendition": "video", "viewer": {"id": "bob"}, "profile": "s3", "ttl": 120}
    response = await http.post("/v1/sign", json=body, headers=world.auth("web"))
    signed = await response.json()
    [key] = await world.services.store.keys.all("web")
    assert response.status == 200 and signed["kid"] == key.kid, signed
    assert signed["url"].startswith(f"{endpoint}/media/v/m1/video.mp4?gw_kid={key.kid}&X-Amz-Algorithm=")
    assert await asyncio.to_thread(_fetch, signed["url"]) == b"the video bytes"
    [issued] = await world.services.store.audit.tail(1)
    assert (issued.event.value, issued.detail["dialect"], issued.kid) == ("url:issued", "s3", key.kid)

    async def verdict(url: str) -> int:
        # What a proxy in front of the bucket presents: the path under the profile's base_url, and the query.
        headers = {"X-Original-URI": url.removeprefix(f"{endpoint}/media"), "X-Gateway-Profile": "s3"}
        return (await http.get("/v1/verify", headers=headers)).status

    assert await verdict(signed["url"]) == 200
    assert await verdict(signed["url"].replace(key.kid, "gwk_" + "x" * 20)) == 403
    await world.services.admin.revoke_key(ADMIN, key.kid, "laptop stolen", world.clock())
    assert await verdict(signed["url"]) == 403  # the gateway refuses at once ...
    assert await asyncio.to_thread(_fetch, signed["url"]) == b"the video bytes"  # ... S3 alone does not: docs/aws.md
    assert (await http.post("/v1/sign", json=body, headers=world.auth("web"))).status == 403  # nor is a new one issued


def test_a_profile_issue_time_is_signed_for_link_revocation() -> None:
    signed = S3.sign(_request(starts=None, issued_at=ISSUED), KEY).url
    assert "X-Amz-Date=20270115T080000Z" in signed
    assert calendar.timegm(time.strptime("20270115T080000Z", "%Y%m%dT%H%M%SZ")) == ISSUED
