"""deploy/compose.yaml holds together: the services the README names, one database for both replicas,
the volumes the Dockerfile declares, nginx's site naming the gateways it runs and passing ``nginx -t``;
and every Compose command the README gives works against it (docker is not needed: the file is read as
compose reads it, each command is checked against it, and the password's way is followed to a server)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.cli.main import build_parser
from gateway.config import Config, load_config
from gateway.store import is_postgres
from tests.nginx_server import nginx_binary

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as compose reads it, every variable at its default (it needs none from the shell)."""
    return dict(yaml.safe_load(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", COMPOSE.read_text())))


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def test_two_gateways_postgresql_and_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "init", "gateway-1", "gateway-2", "nginx"} <= set(services)
    one, two = services["gateway-1"], services["gateway-2"]
    assert _env(one) == _env(two)
    assert _env(one)["GATEWAY_DATABASE_URL"] == "postgresql://gateway@postgres:5432/gateway"  # no password in it
    assert one["env_file"] == services["postgres"]["env_file"] == "./compose/postgres.env"  # the one password
    assert (one["command"], services["init"]["command"]) == (["gatewayctl", "serve"], ["gatewayctl", "init"])
    assert one["volumes"] == two["volumes"] == ["gateway-keys:/data", "audit-export:/exports"]  # same master key
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]  # not beside the keys


def test_the_gateway_environment_is_valid_configuration(compose: dict[str, Any], tmp_path: Path) -> None:
    config = load_config(tmp_path, environ=_env(compose["services"]["gateway-1"]))
    nginx = compose["services"]["nginx"]["networks"]["gateway"]["ipv4_address"]
    assert [str(n) for n in config.trusted_proxies] == [f"{nginx}/32"]  # nginx's X-Forwarded-For is believed
    assert config.shutdown_timeout < int(compose["services"]["gateway-1"]["stop_grace_period"].rstrip("s"))


def test_the_dockerfile_keeps_keys_database_and_exports_apart() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'VOLUME ["/data", "/db", "/exports"]' in dockerfile
    assert "GATEWAY_DATABASE_URL=sqlite:////db/gateway.db" in dockerfile
    assert "GATEWAY_AUDIT_EXPORT_DIR=/exports" in dockerfile


def test_nginx_site_names_the_gateways_and_passes_nginx_t(compose: dict[str, Any], tmp_path: Path) -> None:
    site = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    upstreams = re.findall(r"server (gateway-\d):(\d+);", site)
    assert upstreams == [("gateway-1", "8080"), ("gateway-2", "8080")]
    assert {name for name, _ in upstreams} <= set(compose["services"])
    assert "./compose/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in compose["services"]["nginx"]["volumes"]
    # nginx -t resolves upstream names: give it loopback for the compose network's names.
    local = site.replace("gateway-1:8080", "127.0.0.1:8081").replace("gateway-2:8080", "127.0.0.1:8082")
    local = local.replace("listen 80;", "listen 127.0.0.1:8080;")
    (tmp_path / "site.conf").write_text(local)
    main = (f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{ access_log off; include {tmp_path}/site.conf; }}\n")  # fmt: skip
    (tmp_path / "nginx.conf").write_text(main)
    done = subprocess.run([nginx_binary(), "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c",
                           str(tmp_path / "nginx.conf")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


# --- the README's Compose commands, walked against the file (issue 19, items 2 and 3) ---------------


def _compose_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("### Docker Compose")[1].split("\n## ")[0]


def _blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def _compose_commands() -> list[list[str]]:
    lines = [line for block in _blocks(_compose_section()) for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("docker compose ")]


def _make_password(directory: Path) -> None:
    """The README's once-only step, run as written (everything in its blocks but the docker commands)."""
    script = "\n".join(
        line for block in _blocks(_compose_section()) for line in block.splitlines()
        if not line.startswith("docker compose ")
    )  # fmt: skip
    done = subprocess.run(["bash", "-euc", script], cwd=directory, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_the_file_needs_no_variable_from_the_shell() -> None:
    """Every later command (exec, logs, down) reads the file again: a ${VAR} it needs would fail them."""
    text = "\n".join(line.split(" #")[0] for line in COMPOSE.read_text().splitlines() if not line.startswith("#"))
    uses = re.findall(r"\$\{?(\w+)([^}\s]*)", text)
    assert [name for name, rest in uses if not rest.startswith(":-")] == []


def test_the_password_is_made_once_and_kept_for_every_later_command(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    _make_password(tmp_path)
    secret = tmp_path / "deploy" / "compose" / "postgres.env"
    first = secret.read_text()
    _make_password(tmp_path)  # a second run (a second "up") keeps it: the volume holds that password
    assert secret.read_text() == first and secret.stat().st_mode & 0o777 == 0o600
    values = _env_file(secret)
    assert sorted(values) == ["PGPASSWORD", "POSTGRES_PASSWORD"]
    assert values["PGPASSWORD"] == values["POSTGRES_PASSWORD"] and re.fullmatch(r"[0-9a-f]{32}", values["PGPASSWORD"])
    assert "/deploy/compose/postgres.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_every_readme_compose_command_works_against_the_file(compose: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    _make_password(tmp_path)
    values = _env_file(tmp_path / "deploy" / "compose" / "postgres.env")
    commands = _compose_commands()
    assert [c[4] for c in commands] == ["up", "exec", "exec", "exec"]
    for command in commands:
        assert command[2:4] == ["-f", "deploy/compose.yaml"] and (ROOT / command[3]).is_file()
        action, rest = command[4], command[5:]
        if action == "up":
            assert rest == ["--build"]
            continue
        assert action == "exec"
        service, argv = compose["services"][rest[0]], rest[1:]
        assert argv[0] == "gatewayctl" and "build" in service  # the gateway image, which has gatewayctl
        build_parser().parse_args(argv[1:])  # a usage error would exit
        for name, value in service["environment"].items():  # what the command finds in the container
            assert name.startswith("GATEWAY_") and value is not None
        config = load_config(tmp_path, environ={**_env(service), **values})  # GATEWAY_ variables all known
        assert is_postgres(config) and urlsplit(config.database_url).password is None
    assert values["PGPASSWORD"] == values["POSTGRES_PASSWORD"]  # the gateways log in with what the database has


def test_the_compose_principal_can_take_every_walkthrough_step() -> None:
    """The README's Compose example creates the principal the walk-through uses: step 2 needs media:write."""

    def principal_add(commands: list[list[str]]) -> list[str]:
        [found] = [c[c.index("add") + 1 :] for c in commands if "principals" in c and "add" in c]
        return found

    readme = (ROOT / "README.md").read_text()
    walkthrough = readme.split("## Walk-through")[1].split("\n## ")[0]
    lines = [line for block in _blocks(walkthrough) for line in block.splitlines() if line.startswith("gatewayctl ")]
    walk = principal_add([shlex.split(line, comments=True) for line in lines])
    ours = principal_add(_compose_commands())
    assert ours == walk and {"media:write", "sign", "sign:on-behalf"} <= set(ours[ours.index("--perm") :])


async def test_the_gateways_log_in_with_pgpassword_not_a_password_in_the_url(config: Config) -> None:
    """How Compose hands the password over: PGPASSWORD beside a URL without one. A server that asks for the
    password in clear shows what the gateway sends; the gateway's own output never shows it."""
    received: list[bytes] = []

    async def postgres_asking_for_a_password(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length, code = struct.unpack("!ii", await reader.readexactly(8))
        if code == 80877103:  # SSLRequest: no
            writer.write(b"N")
            length = struct.unpack("!i", await reader.readexactly(4))[0]
            await reader.readexactly(4)
        await reader.readexactly(length - 8)  # the startup message's parameters
        writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        await writer.drain()
        kind, size = struct.unpack("!ci", await reader.readexactly(5))
        received.append(kind + (await reader.readexactly(size - 4)).rstrip(b"\0"))
        text = b'SFATAL\0C28P01\0Mpassword authentication failed for user "gateway"\0\0'
        writer.write(b"E" + struct.pack("!i", len(text) + 4) + text)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(postgres_asking_for_a_password, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    secret = "0123456789abcdef0123456789abcdef"
    env = {**os.environ, "GATEWAY_DATABASE_URL": f"postgresql://gateway@127.0.0.1:{port}/gateway", "PGPASSWORD": secret}
    async with server:
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli.main", "keys", "list", "--data-dir", str(config.data_dir), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(done.communicate(), timeout=60)
    assert (done.returncode, out) == (69, b"")
    assert err.decode() == 'gatewayctl: database error: password authentication failed for user "gateway"\n'
    assert received == [b"p" + secret.encode()]
