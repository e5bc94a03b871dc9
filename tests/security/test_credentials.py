"""Attack: keep using a leaked API credential. There was no way to revoke or rotate one (the
``revoked_at`` column existed, nothing set it). Now ``gatewayctl credentials rotate|revoke`` are
audited, and a token signed with a revoked credential is refused on the very next request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.access import tokens
from gateway.cli.main import main as gatewayctl
from gateway.keys.material import b64url_decode
from gateway.model import Permission
from tests.support import ADMIN, World


async def _cli(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str, str]:
    data_dir = str(world.services.config.data_dir)
    code = await asyncio.to_thread(gatewayctl, ["--data-dir", data_dir, "--actor", "tester", *argv])
    out, err = capsys.readouterr()
    # The CLI is another process: the server learns of its changes at its next poll of the change feed.
    await world.services.state.catch_up()
    return code, out, err


def _token_from(path: Path, world: World) -> dict[str, str]:
    data = json.loads(path.read_text())
    token = tokens.mint_principal_token(
        credential_id=data["credential_id"], principal_id=data["principal"],
        private_seed=b64url_decode(data["private_key"]), audience=data["audience"], now=world.clock(), ttl=600,
    )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_from_a_revoked_credential_is_refused_at_once(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.MEDIA_WRITE, key=None)
    credential_id = world.seeds["web"][0]
    response = await client.get("/v1/media/nothing", headers=world.auth("web"))
    assert response.status == 404  # authenticated: the item just does not exist
    revoked = await world.services.admin.revoke_credential(ADMIN, credential_id, "laptop stolen", world.clock())
    assert revoked.revoked_at == world.clock()
    response = await client.get("/v1/media/nothing", headers=world.auth("web"))
    assert (response.status, (await response.json())["error"]) == (401, "unauthenticated")
    [record] = [r for r in await world.services.store.audit.tail(5) if r.event.value == "credential:revoked"]
    assert (record.subject, record.reason, dict(record.detail)) == (
        "web",
        "laptop stolen",
        {"credential": credential_id},
    )


async def test_rotate_with_revoke_old_switches_credentials_over_http(
    world: World, client: TestClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    keys = world.services.config.keys_dir
    code, out, err = await _cli(capsys, world, "principals", "add", "web", "--perm", "media:write", "--json")
    assert code == 0, err
    old_file = Path(json.loads(out)["credential_file"])
    old_id = json.loads(out)["credential_id"]
    code, out, err = await _cli(
        capsys, world, "credentials", "rotate", "web", "--revoke-old", "--reason", "leaked in CI log", "--json"
    )
    assert code == 0, err
    rotated = json.loads(out)
    new_file = Path(rotated["credential_file"])
    assert new_file == keys / "credentials" / f"web-{rotated['id']}.json" and rotated["revoked"] == [old_id]
    assert new_file.stat().st_mode & 0o777 == 0o600 and old_file.exists()
    assert (await client.get("/v1/media/x", headers=_token_from(old_file, world))).status == 401
    assert (await client.get("/v1/media/x", headers=_token_from(new_file, world))).status == 404
    code, out, _ = await _cli(capsys, world, "credentials", "list", "--principal", "web", "--json")
    assert [(c["id"], c["revoked_at"] is not None) for c in json.loads(out)] == [(old_id, True), (rotated["id"], False)]
    code, out, _ = await _cli(capsys, world, "audit", "search", "--by", "tester", "--json")
    events = [(r["event"], r["reason"], r["detail"].get("credential")) for r in json.loads(out)]
    assert events == [
        ("principal:created", None, old_id),
        ("credential:created", None, rotated["id"]),
        ("credential:revoked", "leaked in CI log", old_id),
    ]


async def test_rotate_without_revoke_old_keeps_the_old_credential_working(
    world: World, client: TestClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await world.principal("web", Permission.MEDIA_WRITE, key=None)
    out_file = tmp_path / "new.json"
    code, out, _ = await _cli(capsys, world, "credentials", "rotate", "web", "--credential-out", str(out_file))
    assert (
        code == 0
        and out.startswith("credential gwc_")
        and out.endswith(f" for web written to {out_file} (mode 0600)\n")
    )
    assert (await client.get("/v1/media/x", headers=world.auth("web"))).status == 404
    assert (await client.get("/v1/media/x", headers=_token_from(out_file, world))).status == 404


async def test_rotation_never_overwrites_and_stores_nothing_without_its_file(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    taken = tmp_path / "taken.json"
    taken.write_text("someone else's file\n")
    code, _, err = await _cli(
        capsys, world, "credentials", "rotate", "web", "--revoke-old", "--credential-out", str(taken)
    )
    assert (code, err) == (4, f"gatewayctl: {taken} already exists; choose a new file (it is never overwritten)\n")
    assert taken.read_text() == "someone else's file\n"
    assert [c.revoked_at for c in await world.services.store.principals.credentials("web")] == [None]
    ghost = tmp_path / "ghost.json"
    code, _, err = await _cli(capsys, world, "credentials", "rotate", "ghost", "--credential-out", str(ghost))
    assert (code, err, ghost.exists()) == (3, "gatewayctl: no principal 'ghost'\n", False)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["credentials", "revoke", "gwc_nope", "--reason", "x"], 3, "gatewayctl: no credential 'gwc_nope'\n"),
        (["credentials", "revoke", "CRED", "--reason", " "], 2, "gatewayctl: a revocation needs a reason\n"),
        (["credentials", "list", "--principal", "ghost"], 3, "gatewayctl: no principal 'ghost'\n"),
        (["credentials", "rotate", "web", "--reason", "x"], 2, "gatewayctl: --reason goes with --revoke-old\n"),
    ],
)
async def test_credential_command_errors(
    world: World, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    argv = [world.seeds["web"][0] if a == "CRED" else a for a in argv]
    assert (await _cli(capsys, world, *argv))[::2] == (code, message)


async def test_revoking_twice_or_for_a_disabled_principal_is_a_conflict(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.principal("web", Permission.SIGN, key=None)
    credential_id = world.seeds["web"][0]
    assert (await _cli(capsys, world, "credentials", "revoke", credential_id, "--reason", "gone"))[0] == 0
    code, _, err = await _cli(capsys, world, "credentials", "revoke", credential_id, "--reason", "again")
    assert (code, err) == (4, f"gatewayctl: credential {credential_id} was already revoked\n")
    await world.services.admin.disable_principal(ADMIN, "web", world.clock())
    code, _, err = await _cli(capsys, world, "credentials", "rotate", "web")
    assert (code, err) == (4, "gatewayctl: principal web is disabled\n")
    assert list((world.services.config.keys_dir / "credentials").glob("web-*.json")) == []  # its file removed
