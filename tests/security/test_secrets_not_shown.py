"""No output, log line or error shows a secret (issue 17, item 9).

The attack: read the database password (or a webhook's, or AWS's) off whatever the gateway prints —
``gatewayctl migrate``, ``init --json``, ``doctor``, an error about an unreachable server, a log line,
``/metrics``, an HTTP error body, a ``repr`` in a traceback. Every place a URL is shown masks its
password as ``***`` (``gateway.redact``), and the places where text leaves the gateway mask it again,
whoever wrote the text (a driver's message that quotes the URL).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from gateway import redact
from gateway.cli.main import main as gatewayctl
from gateway.config import Config, WebhookEndpoint, load_config
from gateway.errors import ConfigError, StoreUnavailable
from gateway.observe.logs import JsonFormatter, TextFormatter
from gateway.web.middleware import error_response

GATEWAYCTL = [sys.executable, "-m", "gateway.cli.main"]
PASSWORD = "Pg-S3cret-4711"


def _with_password(url: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


def _masked(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}:{parts.port}"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = gatewayctl(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pg_data(tmp_path: Path, postgres_url: str) -> tuple[Path, str]:
    """A data directory on PostgreSQL whose URL carries a password (the test server trusts, and ignores it)."""
    data = tmp_path / "data"
    data.mkdir()
    url = _with_password(postgres_url)
    (data / "gateway.toml").write_text(f'[database]\nurl = "{url}"\n')
    return data, url


def test_init_migrate_and_doctor_never_print_the_database_password(
    pg_data: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data, url = pg_data
    code, out, err = _run(capsys, "init", "--data-dir", str(data), "--json")
    assert code == 0, err
    assert json.loads(out)["database"] == _masked(url)
    shown = [out, err]
    for argv in (["init"], ["migrate"], ["migrate", "--json"], ["doctor"], ["doctor", "--json"]):
        code, out, err = _run(capsys, *argv, "--data-dir", str(data))
        assert code == 0, (argv, out, err)
        shown += [out, err]
    assert _run(capsys, "migrate", "--data-dir", str(data))[1] == f"{_masked(url)} is already at the current schema\n"
    assert not [text for text in shown if PASSWORD in text]


UNREADABLE = (
    "database.url cannot be read as a PostgreSQL URL (postgresql://HOST:PORT/DATABASE, with USER:PASSWORD@ before "
    "HOST): percent-encode any @ / ? # : % in the password"
)


@pytest.mark.parametrize(
    ("netloc", "code", "message"),
    [
        (f"postgres:{PASSWORD}@127.0.0.1:1", 69, "cannot reach PostgreSQL at 127.0.0.1:1: connection refused (is it "
         "running there, and does database.url name the right host and port?)"),
        (f"postgres:{PASSWORD}@nowhere.invalid:5432", 69, "cannot reach PostgreSQL at nowhere.invalid:5432: the host "
         "name does not resolve (check the host in database.url)"),
        (f"postgres:{PASSWORD}@127.0.0.1:port", 78, UNREADABLE),
        # An unescaped "/" ends the authority early: the driver would read "Pg" as a port and say so.
        (f"postgres:{PASSWORD.replace('-', '/', 1)}@127.0.0.1:5432", 78, UNREADABLE),
        (f"postgres:{PASSWORD}@[::1", 78, UNREADABLE),
    ],
)  # fmt: skip
def test_a_database_that_cannot_be_reached_or_read_is_one_line_without_the_password(
    config: Config, netloc: str, code: int, message: str
) -> None:
    env = {**os.environ, "GATEWAY_DATABASE_URL": f"postgresql://{netloc}/gateway"}
    for argv in (["keys", "list"], ["migrate"], ["init", "--json"]):
        done = subprocess.run([*GATEWAYCTL, *argv, "--data-dir", str(config.data_dir)], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert (done.returncode, done.stdout, done.stderr) == (code, "", f"gatewayctl: {message}\n"), argv
    for fragment in PASSWORD.split("-"):
        assert fragment not in message


def test_serve_logs_and_metrics_never_show_the_database_password(pg_data: tuple[Path, str]) -> None:
    data, _ = pg_data
    assert subprocess.run([*GATEWAYCTL, "init", "--data-dir", str(data)], capture_output=True).returncode == 0
    env = {**os.environ, "GATEWAY_LOGGING_LEVEL": "debug", "GATEWAY_LOGGING_ACCESS_LOG": "true"}
    proc = subprocess.Popen([*GATEWAYCTL, "serve", "--port", "0", "--data-dir", str(data)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base = line.rsplit(" ", 1)[-1].strip()
        assert line.startswith("gateway (development) serving on http://127.0.0.1:"), line
        scraped = [_get(base + path) for path in ("/metrics", "/readyz", "/v1/media/nothing")]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert scraped[1] == '{"status":"ready"}' and "gateway_" in scraped[0]
    assert not [text for text in [*scraped, out, err] if PASSWORD in text]


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        return str(error.read().decode())


# --- the nets: whoever wrote the text, the URL's password leaves masked ----------------------------

QUOTED = f"connection to postgresql://gateway:{PASSWORD}@db.internal:5432/gateway failed"
MASKED = "connection to postgresql://gateway:***@db.internal:5432/gateway failed"


def test_a_message_quoting_the_url_is_masked_in_log_lines() -> None:
    record = logging.LogRecord("gateway.store", logging.WARNING, __file__, 1, "listener down: %s", (QUOTED,), None)
    record.detail = QUOTED
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["detail"]) == (f"listener down: {MASKED}", MASKED)
    assert TextFormatter("%(message)s").format(record) == f"listener down: {MASKED}"


@pytest.mark.parametrize("run", ["a.", "a-", "a=", "password='", '"password": "', "://", "a://b@"])
def test_a_long_text_is_cut_before_it_is_masked(run: str) -> None:
    """Red team round 9: masking took quadratic time on a run like "a.a.a…" (an unknown field's name echoed in a
    400 held the event loop for seconds). What is masked is at most ``LONGEST`` characters, the rest counted."""
    long = run * (300_000 // len(run)) + f" password={PASSWORD}"
    shown = redact.text(long)
    cut = len(long) - redact.LONGEST
    assert shown == redact.text(long[: redact.LONGEST]) + f"… ({cut} more characters)"
    assert PASSWORD not in shown
    body = error_response(400, "invalid_request", long).text
    assert body is not None and json.loads(body)["message"] == shown


@pytest.mark.parametrize(
    "given",
    [f"1https://hooks.slack.com/services/T0/B0/{PASSWORD}", f"_https://h/x/{PASSWORD}",
     f"https:\\\\hooks.slack.com\\services\\{PASSWORD}", f"admin:{PASSWORD}@hooks.example.com",
     f"hooks.example.com/x/{PASSWORD}"],
)  # fmt: skip
def test_a_webhook_url_that_is_no_url_is_not_echoed(tmp_path: Path, given: str) -> None:
    (tmp_path / "gateway.toml").write_text(f"[webhooks.ops]\nurl = '{given}'\nsecret_file = 'keys/hook.secret'\n")
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path, environ={})
    message = str(refused.value)
    assert message.startswith("webhooks.ops.url must be an http(s) URL") and PASSWORD not in message, message


def test_a_message_quoting_the_url_is_masked_in_http_error_bodies() -> None:
    response = error_response(503, "unavailable", QUOTED)
    assert response.text is not None and json.loads(response.text)["message"] == MASKED


def test_a_message_quoting_the_url_is_masked_on_the_command_line_and_in_doctor(
    config: Config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.cli.doctor
    import gateway.services

    async def refusing(*_: object, **__: object) -> None:
        raise StoreUnavailable(f"database error: {QUOTED}")

    monkeypatch.setattr(gateway.services, "open_store", refusing)
    monkeypatch.setattr(gateway.cli.doctor, "open_store", refusing)
    code, out, err = _run(capsys, "keys", "list", "--data-dir", str(config.data_dir))
    assert (code, out, err) == (69, "", f"gatewayctl: database error: {MASKED}\n")
    code, out, _ = _run(capsys, "doctor", "--data-dir", str(config.data_dir))
    assert code == 1 and f"FAIL store: database error: {MASKED}\n" in out
    code, out, _ = _run(capsys, "doctor", "--json", "--data-dir", str(config.data_dir))
    assert {"name": "store", "status": "FAIL", "detail": f"database error: {MASKED}"} in json.loads(out)


def test_kms_errors_show_neither_the_endpoint_password_nor_aws_credentials(config: Config) -> None:
    env = {
        **os.environ,
        "GATEWAY_MASTER_KEY_BACKEND": "kms",
        "GATEWAY_MASTER_KEY_KMS_KEY_ID": "alias/media-gateway",
        "GATEWAY_MASTER_KEY_KMS_ENDPOINT_URL": "http://kmsuser:Kms-S3cret@127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "AKIATESTKEYID0000000",
        "AWS_SECRET_ACCESS_KEY": "Aws-S3cret-Access-Key",
    }
    done = subprocess.run([*GATEWAYCTL, "keys", "list", "--data-dir", str(config.data_dir)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout) == (69, "")
    assert done.stderr == (
        "gatewayctl: AWS KMS is unreachable (GenerateDataKey): Could not connect to the endpoint URL: "
        '"http://kmsuser:***@127.0.0.1:1/"\n'
    )
    assert "S3cret" not in done.stderr


def test_webhook_url_passwords_and_signing_secrets_are_never_shown(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = b"whsec_Hook-Signing-S3cret-0123456789"
    (config.keys_dir / "hook.secret").write_bytes(secret)
    (config.keys_dir / "hook.secret").chmod(0o600)
    with (config.data_dir / "gateway.toml").open("a") as toml:  # port 99999: the client quotes the whole URL
        toml.write('\n[webhooks]\nmax_attempts = 1\n\n[webhooks.backend]\n'
                   'url = "http://hookuser:Hook-S3cret@127.0.0.1:99999/hook"\n'
                   'secret_file = "keys/hook.secret"\n')  # fmt: skip
    data = str(config.data_dir)
    shown = [_run(capsys, "webhooks", "deliver", "--data-dir", data)]
    assert _run(capsys, "principals", "add", "web", "--data-dir", data, "--actor", "t")[0] == 0
    assert _run(capsys, "principals", "disable", "web", "--data-dir", data, "--actor", "t")[0] == 0
    shown += [_run(capsys, *argv, "--data-dir", data) for argv in (
        ["webhooks", "deliver"], ["webhooks", "list"], ["webhooks", "list", "--json"], ["doctor"],
        ["audit", "search", "--event", "webhook:abandoned", "--json"],
    )]  # fmt: skip
    [listed] = json.loads(shown[3][1])
    assert listed["last_error"] == "InvalidUrlClientError: http://hookuser:***@127.0.0.1:99999/***"
    texts = [text for _, out, err in shown for text in (out, err)]
    assert not [text for text in texts if "Hook-S3cret" in text or "Signing-S3cret" in text]


def test_reprs_hold_no_secrets(tmp_path: Path) -> None:
    from gateway.admin.principals import new_credential
    from gateway.alerts.outbox import Endpoint
    from gateway.cli.credentials import CredentialFile

    config = load_config(tmp_path, environ={"GATEWAY_DATABASE_URL": f"postgresql://gw:{PASSWORD}@db/gw"})
    made = new_credential("web", 0.0)
    texts = [
        repr(config),
        repr(WebhookEndpoint("backend", f"https://hook:{PASSWORD}@example.com/", "keys/hook.secret")),
        repr(Endpoint("backend", f"https://hook:{PASSWORD}@example.com/", (PASSWORD.encode(),), ())),
        repr(CredentialFile("web", "gwc_1", b"\x01" * 32, "media-gateway")),
        repr(made),
    ]
    assert not [text for text in texts if PASSWORD in text or repr(b"\x01" * 32) in text or repr(made.seed) in text]


@pytest.mark.parametrize(
    ("shown", "masked"),
    [
        (f"postgresql://gw:{PASSWORD}@db:5432/gw", "postgresql://gw:***@db:5432/gw"),
        (f"postgresql://gw:p@ss{PASSWORD}@db/gw", "postgresql://gw:***@db/gw"),  # an unescaped @ in the password
        (f"postgresql://gw@db/gw?sslmode=require&password={PASSWORD}",
         "postgresql://gw@db/gw?sslmode=require&password=***"),
        ("postgresql://gw@db:5432/gw", "postgresql://gw@db:5432/gw"),  # nothing to mask: a role name
        ("https://0a1b2c3d4e5f@o1.ingest.sentry.io/42", "https://***@o1.ingest.sentry.io/42"),  # a DSN's key
        ("https://ghp_Secret@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
        ("HTTPS://tok@host/", "HTTPS://***@host/"),
        ("http://a@b@host/x", "http://***@host/x"),
        (f"see https://key@hooks.example.com/x?sig={PASSWORD}", "see https://***@hooks.example.com/x?sig=***"),
        ("https://cdn.example.com/v/a@b/x.mp4?gw_exp=1", "https://cdn.example.com/v/a@b/x.mp4?gw_exp=1"),  # @ in a path
        (f'failed: "https://u:{PASSWORD}@hooks.example.com/x" (attempt 2)',
         'failed: "https://u:***@hooks.example.com/x" (attempt 2)'),
        (f"host=db password={PASSWORD} user=gw", "host=db password=*** user=gw"),
        (f"https://s3.example.com/b/k?X-Amz-Date=1&X-Amz-Signature={PASSWORD}&X-Amz-Security-Token={PASSWORD}",
         "https://s3.example.com/b/k?X-Amz-Date=1&X-Amz-Signature=***&X-Amz-Security-Token=***"),
        (f"POST https://hooks.example.com/in?token={PASSWORD}&access_token={PASSWORD} refused",
         "POST https://hooks.example.com/in?token=***&access_token=*** refused"),
        (f"api_key={PASSWORD}, client_secret={PASSWORD}", "api_key=*** client_secret=***"),  # the comma: masked too
        # The gateway's own signature and the CDN formats': a signed URL in a log line is a credential.
        ("https://cdn.example.com/v/x?gw_kid=k&gw_sig=abc", "https://cdn.example.com/v/x?gw_kid=k&gw_sig=***"),
        ("/v/x?hdnts=exp=9~acl=/v/*~hmac=abc&md5=def&wmsAuthSign=ghi",
         "/v/x?hdnts=exp=9~acl=/v/*~hmac=***&md5=***&wmsAuthSign=***"),
        (f"https://maps.example.com/x?key={PASSWORD}&api-key={PASSWORD}&auth_token={PASSWORD}",
         "https://maps.example.com/x?key=***&api-key=***&auth_token=***"),
        (f"password=ab,{PASSWORD};x", "password=***"),  # a comma or semicolon may be part of a password
        ("tokens=3 signatures=2 gw_kid=k Key-Pair-Id=K2", "tokens=3 signatures=2 gw_kid=k Key-Pair-Id=K2"),
        # Red team round 9: quoted values, JSON members, Authorization, camelCase names, URLs inside URLs.
        (f"host=db password='{PASSWORD} 2' dbname=test", "host=db password=*** dbname=test"),
        (f'password="{PASSWORD}" x', "password=*** x"),
        (f'{{"password": "{PASSWORD}", "api-key":"{PASSWORD}", "other": "y"}}',
         '{"password": "***", "api-key":"***", "other": "y"}'),
        (f"Authorization: Bearer {PASSWORD}.abc rest", "Authorization: Bearer *** rest"),
        ("authorization: Basic dXNlcjpwYXNz rest", "authorization: Basic *** rest"),
        ("bearer token has no key id", "bearer token has no key id"),
        (f"gw_viewer={PASSWORD}; PGPASSWORD={PASSWORD} passphrase={PASSWORD}",
         "gw_viewer=*** PGPASSWORD=*** passphrase=***"),
        (f"?accessToken={PASSWORD}&clientSecret={PASSWORD}&authToken=a&apiToken=b AccountKey=c",
         "?accessToken=***&clientSecret=***&authToken=***&apiToken=*** AccountKey=***"),
        (f"https://a.example/cb?next=https://user:{PASSWORD}@b.example/x",
         "https://a.example/cb?next=https://user:***@b.example/x"),
        (f"https://a.example,https://user:{PASSWORD}@b.example", "https://a.example,https://user:***@b.example"),
        ("?u=https://SENTRYKEY@o1.ingest.sentry.io/1", "?u=https://***@o1.ingest.sentry.io/1"),
        (f"_https://{PASSWORD}@h/x", "_https://***@h/x"),  # a scheme glued to "_"
        ("x_" * 40 + f"password={PASSWORD}", "x_" * 40 + "password=***"),
        ("unknown key: gwk_abc (a=b)", "unknown key: gwk_abc (a=b)"),
    ],
)  # fmt: skip
def test_redact_masks_exactly_the_password(shown: str, masked: str) -> None:
    assert redact.text(shown) == masked
    assert redact.text(masked) == masked


@pytest.mark.parametrize(
    ("shown", "masked"),
    [
        (f"ClientConnectorError: https://hooks.slack.com/services/T0/B0/{PASSWORD}",
         "ClientConnectorError: https://hooks.slack.com/***"),
        (f"InvalidUrlClientError: http://hook:{PASSWORD}@127.0.0.1:99999/hook?token={PASSWORD}",
         "InvalidUrlClientError: http://hook:***@127.0.0.1:99999/***"),
        ("TimeoutError: https://hooks.example.com/ timed out", "TimeoutError: https://hooks.example.com/ timed out"),
        (f"InvalidUrlClientError: https://127.0.0.1:1\\services\\T0\\{PASSWORD}",  # a backslash ends the host too
         "InvalidUrlClientError: https://127.0.0.1:1/***"),
        (f"host=db password={PASSWORD}", "host=db password=***"),  # and what text masks
    ],
)  # fmt: skip
def test_a_webhook_error_shows_the_endpoints_host_not_its_secret_path(shown: str, masked: str) -> None:
    assert redact.without_path(shown) == masked
