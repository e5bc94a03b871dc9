"""Every published test vector from shared/reference, as data files under tests/vectors/."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.errors import InvalidInput
from gateway.keys.material import KeyMaterial
from gateway.model import KeyAlgorithm
from gateway.signing.dialects import akamai, bunny, media_cdn, nimble, wowza
from gateway.signing.dialects.base import Redemption, SignRequest
from gateway.signing.dialects.cloudfront import CloudFrontDialect, custom_policy
from gateway.signing.dialects.google_cdn import GoogleCdnDialect
from gateway.signing.dialects.nginx_secure_link import NginxSecureLinkDialect, render, secure_link_hash
from gateway.signing.paths import path_problem

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


# --- CloudFront -------------------------------------------------------------------------------
CF = load("cloudfront.json")
CF_KEY = CloudFrontDialect().load_key((VECTORS / "cloudfront_test_key.pem").read_bytes(), CF["key_pair_id"])


def test_cloudfront_canned_sha1() -> None:
    signed = CloudFrontDialect().sign(SignRequest(CF["url"], CF["expires"]), CF_KEY)
    assert signed.url == CF["canned_sha1"]
    assert CloudFrontDialect().verify(Redemption(signed.url, CF["expires"] - 1), CF_KEY).expires == CF["expires"]


def test_cloudfront_canned_sha256() -> None:
    request = SignRequest(CF["url"], CF["expires"], options={"hash_algorithm": "SHA256"})
    url = CloudFrontDialect().sign(request, CF_KEY).url
    assert f"Signature={CF['canned_sha256_signature']}&" in url and url.endswith("&Hash-Algorithm=SHA256")
    assert CloudFrontDialect().verify(Redemption(url, CF["expires"] - 1), CF_KEY)


def test_cloudfront_custom_policy() -> None:
    custom = CF["custom"]
    assert custom_policy(CF["url"], CF["expires"], custom["starts"], custom["ip"]) == custom["policy"]
    request = SignRequest(CF["url"], CF["expires"], starts=custom["starts"], ip="10.0.0.0")
    url = CloudFrontDialect().sign(request, CF_KEY).url
    assert url == (
        f"{CF['url']}?Policy={custom['policy_param']}&Signature={custom['signature']}&Key-Pair-Id={CF['key_pair_id']}"
    )
    inside = Redemption(url, custom["starts"] + 1, "10.0.0.0")
    assert CloudFrontDialect().verify(inside, CF_KEY)


def test_cloudfront_wildcard_policy_resource() -> None:
    request = SignRequest(CF["url"], CF["expires"], prefix="/private-content/")
    signed = CloudFrontDialect().sign(request, CF_KEY)
    assert signed.cookies["CloudFront-Signature"] == CF["wildcard"]["signature"]


# --- Google Cloud CDN / Media CDN signatures ----------------------------------------------------
GOOGLE = load("google_cdn.json")


@pytest.mark.parametrize("suite", GOOGLE["suites"], ids=["cloud-cdn-hmac-sha1", "media-cdn-ed25519"])
def test_google_cdn_signed_urls_prefixes_and_cookies(suite: dict) -> None:
    dialect = GoogleCdnDialect()
    key = dialect.load_key(suite["key"].encode(), suite["key_name"])
    for url, expected in suite["urls"]:
        assert dialect.sign(SignRequest(url, suite["expires"]), key).url == expected
        assert dialect.verify(Redemption(expected, suite["expires"] - 1), key).key_id == "my-key"
    for url, prefix, expected in suite["prefixes"]:
        assert dialect.sign(SignRequest(url, suite["expires"], prefix=prefix), key).url == expected
        assert dialect.verify(Redemption(expected, suite["expires"] - 1), key)
    for url, prefix, cookie in suite["cookies"]:
        signed = dialect.sign(SignRequest(url, suite["expires"], prefix=prefix), key)
        assert signed.cookies == {suite["cookie"]: cookie}
        assert dialect.verify(Redemption(url, suite["expires"] - 1, cookies=signed.cookies), key)


# --- Media CDN dual tokens -----------------------------------------------------------------------
MEDIA = load("media_cdn_tokens.json")


def _media_fields(case: str) -> tuple[list[str], list[str]]:
    i = MEDIA["inputs"]
    scope = {"url_prefix": {"url_prefix": i["url_prefix"]}, "full_path": {"full_path": i["full_path"]}}
    if case in scope:
        return media_cdn.token_fields(expires=i["expires"], **scope[case])
    if case == "path_globs":
        return media_cdn.token_fields(expires=i["expires"], path_globs=i["path_globs"])
    return media_cdn.token_fields(
        expires=i["expires"], path_globs=i["path_globs"], starts=i["starts"], session_id=i["session_id"],
        data=i["data"], headers=[tuple(h) for h in i["headers"]], ip_ranges=i["ip_ranges"],
    )  # fmt: skip


@pytest.mark.parametrize("algorithm", ["ed25519", "sha1", "sha256"])
def test_media_cdn_tokens(algorithm: str) -> None:
    dialect = media_cdn.MediaCdnDialect()
    raw_key = MEDIA["keys"]["ed25519" if algorithm == "ed25519" else "hmac"].encode()
    key = dialect.load_key(raw_key, "hmac" if algorithm != "ed25519" else None)
    for case, expected in MEDIA["cases"][algorithm]:
        token, signed = _media_fields(case)
        assert media_cdn.sign_fields(token, signed, key, algorithm if algorithm != "ed25519" else "sha256") == expected


def test_media_cdn_full_path_token_verifies_only_on_its_path() -> None:
    dialect = media_cdn.MediaCdnDialect()
    key = dialect.load_key(MEDIA["keys"]["hmac"].encode(), "hmac")
    token = MEDIA["cases"]["sha256"][2][1]
    ok = Redemption(f"http://10.20.30.40/example.m3u8?edge-cache-token={token}", 1663027300)
    assert dialect.verify(ok, key).expires == 1663070400
    with pytest.raises(Exception, match="not valid"):
        dialect.verify(Redemption(ok.url.replace("example", "other"), 1663027300), key)


# --- Akamai ------------------------------------------------------------------------------------
SHARED = load("shared_secret_formats.json")


@pytest.mark.parametrize("case", SHARED["akamai"]["cases"], ids=lambda c: c["token"][:24])
def test_akamai_edgeauth(case: dict) -> None:
    kwargs = {k: case[k] for k in ("starts", "ip", "session_id", "data", "algorithm", "salt", "escape") if k in case}
    scope = {"acl": case["acl"]} if case["kind"] == "acl" else {"url": case["url"]}
    key = bytes.fromhex(SHARED["akamai"]["key"])
    assert akamai.generate_token(key, expires=case["expires"], **scope, **kwargs) == case["token"]


# --- nginx ---------------------------------------------------------------------------------------
def test_nginx_secure_link_md5() -> None:
    v = SHARED["nginx"]
    values = {"secure_link_expires": str(v["expires"]), "uri": v["uri"], "remote_addr": v["remote_addr"],
              "secret": v["secret"]}  # fmt: skip
    assert render(v["expression"], values) == "2147483647/s/link127.0.0.1 secret"
    dialect = NginxSecureLinkDialect()
    key = dialect.load_key(b"secret\n", None)
    # nginx's documented example expression (not the gateway's default, which adds separators and gw_kid)
    options = {"expression": v["expression"]}
    request = SignRequest("http://localhost/s/link", v["expires"], ip="127.0.0.1", options=options)
    assert dialect.sign(request, key).url == "http://localhost" + v["signed"]
    assert secure_link_hash("2147483647/s/link127.0.0.1 secret") == "_e4Nc3iduzkWRm01TBBNYw"


# --- Wowza ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", SHARED["wowza"]["cases"], ids=["no-ip", "ip-and-start"])
def test_wowza_securetoken(case: dict) -> None:
    got = wowza.token_hash(case["content_path"], case["params"], case["secret"], case["ip"], "sha256")
    assert got == case["hash"]


# --- WMSAuth -------------------------------------------------------------------------------------
def test_wmsauth() -> None:
    v = SHARED["wmsauth"]
    assert nimble.server_time(v["epoch"]) == v["server_time"]
    digest = nimble.hash_value(v["ip"], v["key"], v["server_time"], v["validminutes"])
    assert digest == v["hash_value"]
    assert nimble.auth_sign(v["server_time"], digest, v["validminutes"], None) == v["wmsAuthSign"]
    dialect = nimble.NimbleDialect()
    key = dialect.load_key(v["key"].encode(), None)
    request = SignRequest(
        "http://nimble.example/live/stream/playlist.m3u8", v["epoch"] + 1200, ip=v["ip"], issued_at=v["epoch"]
    )
    url = dialect.sign(request, key).url
    assert url.endswith("wmsAuthSign=" + v["wmsAuthSign"])
    assert dialect.verify(Redemption(url, v["epoch"] + 60, v["ip"]), key).expires == v["epoch"] + 1200


# --- Bunny ---------------------------------------------------------------------------------------
BUNNY = load("bunny.json")


@pytest.mark.parametrize("case", BUNNY["cases"], ids=lambda c: c["name"])
def test_bunny(case: dict) -> None:
    dialect = bunny.BunnyDialect()
    key = KeyMaterial("", KeyAlgorithm.SHARED_SECRET, None, BUNNY["key"].encode())
    params = {}
    if case.get("ignore"):
        params["token_ignore_params"] = "true"
    for field, name in (
        ("countries", "token_countries"),
        ("blocked", "token_countries_blocked"),
        ("limit", "limit"),
    ):
        if field in case and not case.get("ignore"):
            params[name] = case[field]
    if "token_path" in case:
        params["token_path"] = case["token_path"]
    path = case.get("token_path", case["path"])
    assert bunny.bunny_token(BUNNY["key"].encode(), path, BUNNY["expires"], params, case.get("ip")) == case["token"]
    if "url" in case:
        options = {"directory": "true"} if case.get("directory") else {}
        options.update({n: v for n, v in params.items() if n != "token_path"})
        prefix = case.get("token_path") if "token_path" in case else None
        request = SignRequest(
            BUNNY["host"] + case["path"], BUNNY["expires"], ip=case.get("ip"), prefix=prefix, options=options
        )
        if path_problem(urlsplit(case["url"]).path) is None:
            assert dialect.sign(request, key).url == case["url"]
        else:
            # Bunny writes CA%2CUS in the path: a second spelling of CA,US, which no canonical path holds
            # (docs/paths.md, rule 3). The gateway signs such a token in the query form instead.
            with pytest.raises(InvalidInput, match="cannot travel in a canonical path: use the query form"):
                dialect.sign(request, key)
        redemption = Redemption(case["url"], BUNNY["expires"] - 10, case.get("ip"))
        assert dialect.verify(redemption, key).expires == BUNNY["expires"]


def test_bunny_digest_starting_with_1_dash_is_not_mistaken_for_the_ip_flag() -> None:
    """Regression (found by the property test): "HS256-" + a digest that begins "1-" is not IP-bound."""
    dialect = bunny.BunnyDialect()
    key = KeyMaterial("", KeyAlgorithm.SHARED_SECRET, None, b"SecurityKey")
    # about one digest in 4096 starts with "1-": search the paths for one
    n = next(
        n
        for n in range(200_000)
        if bunny.bunny_token(b"SecurityKey", f"/f{n}.ts", 1_900_000_000, {}, None)[6:8] == "1-"
    )
    url = dialect.sign(SignRequest(f"https://z.b-cdn.net/f{n}.ts", 1_900_000_000), key).url
    assert "token=HS256-1-" in url
    assert dialect.verify(Redemption(url, 1_800_000_000, None), key).expires == 1_900_000_000
