"""gatewayctl, driven through its entry point: output, --json and exit codes."""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

import pytest

from gateway.cli.main import build_parser, main
from gateway.config import Config


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), "--actor", "tester", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str):  # type: ignore[no-untyped-def]
    code, out, err = run(capsys, data_dir, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _commands(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
    """Every leaf command, found by walking the parser (a new command cannot escape the check)."""
    found: list[list[str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, [*prefix, name])
    return found or [prefix]


def _leaf(parser: argparse.ArgumentParser, command: list[str]) -> argparse.ArgumentParser:
    for name in command:
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = _commands(parser, [])
    assert ["incident", "report"] in commands and ["subject", "erase"] in commands and len(commands) >= 29
    for command in commands:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([*command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "usage: gatewayctl " + " ".join(command) in out
        assert "--data-dir" in out or command in (["sign"], ["verify"], ["completion"])
        undocumented = [a.dest for a in _leaf(parser, command)._actions if not a.help]
        assert not undocumented, f"{command}: arguments without help: {undocumented}"


def test_init_is_idempotent_and_protects_keys(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, config.data_dir, "init")
    assert data["created"] == []
    assert os.stat(config.master_key_path).st_mode & 0o777 == 0o600
    assert os.stat(config.dev_idp_key_path).st_mode & 0o777 == 0o600


def test_key_lifecycle(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    d = config.data_dir
    added = run_json(capsys, d, "principals", "add", "alice", "--kind", "engineer", "--perm", "sign")
    assert Path(added["credential_file"]).stat().st_mode & 0o777 == 0o600
    created = run_json(capsys, d, "keys", "create", "--principal", "alice")
    assert created["kid"].startswith("gwk_") and created["state"] == "active"
    rotated = run_json(capsys, d, "keys", "rotate", "--principal", "alice")
    listed = run_json(capsys, d, "keys", "list", "--principal", "alice")
    assert [k["kid"] for k in listed] == [created["kid"], rotated["kid"]]
    revoked = run_json(capsys, d, "keys", "revoke", created["kid"], "--reason", "laptop lost")
    assert revoked["state"] == "revoked" and revoked["revoked_by"] == "tester"
    assert run_json(capsys, d, "keys", "show", created["kid"])["revoked_reason"] == "laptop lost"
    code, _, err = run(capsys, d, "keys", "revoke", created["kid"], "--reason", "again")
    assert code == 4 and "already revoked" in err
    events = [r["event"] for r in run_json(capsys, d, "audit", "search", "--by", "tester")]
    assert events == ["principal:created", "key:created", "key:rotated", "key:revoked"]
    assert (
        run_json(capsys, d, "audit", "search", "--event", "key:rotated")[0]["detail"]["previous_kid"] == created["kid"]
    )


def test_grants_and_media(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    d = config.data_dir
    run_json(capsys, d, "principals", "add", "eve", "--kind", "engineer")
    media = run_json(capsys, d, "media", "put", "m1", "--owner", "alice", "--workspace", "w1", "--video", "/v/m1.mp4")
    assert media["renditions"] == {"video": "/v/m1.mp4"} and media["visibility"] == "private"
    grant = run_json(
        capsys,
        d,
        "grants",
        "add",
        "--principal",
        "eve",
        "--media",
        "m1",
        "--reason",
        "INC-7",
        "--duration",
        "30m",
    )
    assert grant["live"] and grant["expires_at"] - grant["created_at"] == 1800
    run_json(capsys, d, "grants", "revoke", grant["id"])
    assert run_json(capsys, d, "grants", "list")[0]["live"] is False
    run_json(capsys, d, "media", "delete", "m1")
    code, _, err = run(capsys, d, "media", "show", "m1")
    assert code == 3 and "no media item" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["keys", "show", "gwk_nope"], 3, "no key"),
        (["keys", "create", "--principal", "ghost"], 3, "no principal"),
        (["keys", "create", "--principal", "pages", "--algorithm", "rsa"], 2, "--algorithm"),
        (["principals", "add", "bad id"], 2, "principal id"),
        (["principals", "add", "pages"], 4, "already exists"),
        (["grants", "add", "--principal", "pages", "--media", "m", "--reason", "x"], 2, "engineers"),
        (
            ["grants", "add", "--principal", "pages", "--media", "m", "--reason", "x", "--duration", "soon"],
            2,
            "duration",
        ),
        (["media", "put", "m", "--owner", "a", "--workspace", "w"], 2, "--video"),
        (["audit", "search", "--event", "nope"], 2, "--event"),
        (["token"], 2, "exactly one"),
        (["token", "--credential", "/nonexistent.json"], 2, "does not exist"),
    ],
)
def test_errors_have_exit_codes(
    config: Config, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _, err = run(capsys, config.data_dir, *argv)
    assert got == code
    assert message in err and "Traceback" not in err


def test_bad_config_exits_78_naming_the_key(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    (config.data_dir / "gateway.toml").write_text("[server]\nport = 'eighty'\n")
    code, _, err = run(capsys, config.data_dir, "keys", "list")
    assert code == 78 and "server.port" in err


def test_missing_master_key_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, tmp_path, "keys", "list")
    assert code == 78 and "gatewayctl init" in err


def test_tokens_for_scripts(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    d = config.data_dir
    added = run_json(capsys, d, "principals", "add", "svc")
    token = run_json(capsys, d, "token", "--credential", added["credential_file"], "--ttl", "5m")
    assert token["ttl"] == 300 and token["token"].count(".") == 2
    code, _, err = run(capsys, d, "token", "--credential", added["credential_file"], "--ttl", "2d")
    assert code == 2 and "max_token_lifetime" in err
    viewer = run_json(capsys, d, "token", "--viewer", "alice", "--workspace", "w1")
    assert viewer["token"].count(".") == 2


def test_viewer_tokens_refused_with_a_real_idp(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    (config.data_dir / "gateway.toml").write_text("[viewer]\nissuer = 'https://idp.example'\naudience = 'a'\n")
    code, _, err = run(capsys, config.data_dir, "token", "--viewer", "alice")
    assert code == 78 and "identity provider" in err


def test_audit_tail_text(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, config.data_dir, "audit", "tail", "-n", "1")
    assert code == 0 and "key:created" in out


VECTORS = Path(__file__).parent / "vectors"
CF_URL = "https://d111111abcdef8.cloudfront.net/private-content/private.jpeg"


def offline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_offline_sign_reproduces_botocore_and_verify_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    key = str(VECTORS / "cloudfront_test_key.pem")
    base = ["--dialect", "cloudfront", "--key-file", key, "--key-id", "APKAEIBAERJR2EXAMPLE"]
    code, out = offline(capsys, "sign", *base, "--url", CF_URL, "--expires", "1577836800")
    expected = json.loads((VECTORS / "cloudfront.json").read_text())["canned_sha1"]
    assert code == 0 and out.strip() == expected
    verdicts = {
        "valid": (["--now", "1577836000"], 0, "valid until 2020-01-01T00:00:00Z"),
        "expired": (["--now", "1577836800"], 1, "invalid: expired"),
        "tampered": (["--now", "1", "--url", expected.replace("private.jpeg", "public.jpeg")], 1, "bad signature"),
        "other key id": (["--now", "1", "--key-id", "K2OTHER"], 1, "unknown key id"),
    }
    for name, (extra, want_code, want_text) in verdicts.items():
        argv = ["verify", *base, "--url", expected, *extra]
        if "--key-id" in extra:
            argv = ["verify", "--dialect", "cloudfront", "--key-file", key, "--url", expected, *extra]
        code, out = offline(capsys, *argv)
        assert (code, want_text in out) == (want_code, True), name
    # --now nan made every comparison false: the expired URL was "valid". A usage error now (red team round 3, L5).
    with pytest.raises(SystemExit) as stopped:
        offline(capsys, "verify", *base, "--url", expected, "--now", "nan")
    assert stopped.value.code == 2
    assert "argument --now: not a time: 'nan'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("ip", "code", "text"),
    [("127.0.0.1", 0, "valid"), ("127.0.0.2", 1, "wrong IP"), (None, 1, "wrong IP")],
)
def test_offline_nginx_verify_names_ip_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ip: str | None, code: int, text: str
) -> None:
    (tmp_path / "secret").write_text("secret\n")
    url = "http://localhost/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
    argv = ["verify", "--dialect", "nginx", "--key-file", str(tmp_path / "secret"), "--url", url,
            "--option", "expression=$secure_link_expires$uri$remote_addr $secret"]  # fmt: skip  # nginx's example
    got, out = offline(capsys, *argv, *(["--ip", ip] if ip else []))
    assert got == code and text in out


def test_offline_cookies_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "k").write_text("nZtRohdNF9m3cKM24IcK4w==")
    argv = ["sign", "--dialect", "google-cdn", "--key-file", str(tmp_path / "k"), "--key-id", "my-key",
            "--url", "http://www.example.com/foo/a.ts", "--expires", "1549751401", "--prefix", "/foo/"]  # fmt: skip
    code, out = offline(capsys, *argv, "--cookie")
    assert code == 0 and out.startswith("Set-Cookie: Cloud-CDN-Cookie=URLPrefix=aHR0cDovL3d3dy5leGFtcGxlLmNvbS9mb28v")
    code, out = offline(capsys, *argv, "--json")
    assert json.loads(out)["cookies"]["Cloud-CDN-Cookie"].endswith("Signature=Z9uYAu73YHioRScZDxnP-TnS274=")


NGINX_EXAMPLE = ["--option", "expression=$secure_link_expires$uri$remote_addr $secret", "--ip", "127.0.0.1"]


@pytest.mark.parametrize(
    "path",
    ["/s/%6Cink", "/s/x/../link", "/s//link", "/s/%6cink"],
    ids=["escaped-unreserved", "dot-segment", "empty-segment", "lower-case-escape"],
)
def test_offline_verify_refuses_a_non_canonical_path_as_the_gateway_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    """nginx hashes the decoded $uri, so '/s/%6Cink' hashes as '/s/link': the dialect alone would say valid."""
    (tmp_path / "secret").write_text("secret\n")
    url = f"http://localhost{path}?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
    argv = ["verify", "--dialect", "nginx", "--key-file", str(tmp_path / "secret"), *NGINX_EXAMPLE, "--now", "1"]
    assert offline(capsys, *argv, "--url", url.replace(path, "/s/link"))[0] == 0
    code, out = offline(capsys, *argv, "--url", url, "--json")
    assert (code, json.loads(out)["reason"]) == (1, "non-canonical-path")
    code, out = offline(capsys, *argv, "--url", url)
    assert code == 1 and out.startswith("invalid: non-canonical path: ")


def test_offline_native_signs_and_shows_the_signed_issue_time(capsys: pytest.CaptureFixture[str]) -> None:
    key = VECTORS / "native_ed25519_test_key.pem"
    base = ["--dialect", "native", "--key-file", str(key), "--key-id", "gwk_cli"]
    url = "https://cdn.example.com/v/a.mp4"
    code, out = offline(capsys, "sign", *base, "--url", url, "--expires", "1577836800")
    assert code == 2 and "the issue time (gw_iat) is after the expiry" in out  # "now" is past 2020
    code, out = offline(capsys, "sign", *base, "--url", url, "--expires", "1577836800", "--issued-at", "1577836000")
    signed = out.strip()
    assert code == 0 and "gw_exp=1577836800&gw_iat=1577836000&gw_kid=gwk_cli&gw_sig=" in signed
    code, out = offline(capsys, "verify", *base, "--url", signed, "--now", "1577836001", "--json")
    assert code == 0 and json.loads(out)["issued_at"] == 1577836000
    code, out = offline(capsys, "verify", *base, "--url", signed, "--now", "1577836001")
    assert out.strip() == "valid until 2020-01-01T00:00:00Z (key gwk_cli), issued 2019-12-31T23:46:40Z"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dialect", "rtmp"], "unknown dialect"),
        (["--dialect", "cloudfront"], "--key-id"),
        (["--dialect", "cloudfront", "--key-id", "K1", "--ip", "2001:db8::1"], "IPv6"),
        (["--dialect", "google-cdn", "--key-id", "Bad_Name"], "KeyName"),
        (["--dialect", "nginx", "--option", "expression"], "NAME=VALUE"),
        (["--dialect", "nginx", "--option", "expression=$request_method $secret"], "unsupported variables"),
    ],
)
def test_offline_sign_errors_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    key = VECTORS / "cloudfront_test_key.pem"
    code, out = offline(
        capsys, "sign", "--key-file", str(key), "--url", "https://x/a", "--expires", "2000000000", *argv
    )
    assert code == 2 and message in out and "Traceback" not in out


def test_key_link_show_and_audited_export(config: Config, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = config.data_dir
    run_json(capsys, d, "principals", "add", "web")
    created = run_json(capsys, d, "keys", "create", "--principal", "web", "--algorithm", "rsa-2048")
    assert created["public_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    linked = run_json(capsys, d, "keys", "link", created["kid"], "K2JCJMDEHXQW5F")
    assert linked["external_id"] == "K2JCJMDEHXQW5F"
    code, _, err = run(capsys, d, "keys", "link", created["kid"], "K3OTHER")
    assert code == 4 and "already linked" in err
    cdn = run_json(
        capsys, d, "keys", "create", "--principal", "web", "--algorithm", "hmac-sha1", "--external-id", "web-key"
    )
    out_file = tmp_path / "cloud-cdn.key"
    run_json(capsys, d, "keys", "export-secret", cdn["kid"], "--reason", "install at Cloud CDN", "--out", str(out_file))
    assert out_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(out_file.read_text().strip())) == 16
    [exported] = run_json(capsys, d, "audit", "search", "--event", "key:exported")
    assert (exported["kid"], exported["reason"]) == (cdn["kid"], "install at Cloud CDN")
