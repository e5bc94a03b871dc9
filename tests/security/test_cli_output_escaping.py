"""Attack: terminal escapes and forged lines through human-readable output. A media id, user agent
or principal id with ESC, CR/LF or a bidi override reached ``gatewayctl audit tail`` raw: it could
clear the screen, retitle the terminal or print a fake record. Every human-readable line is escaped
in one place (gateway.cli.output.printable), whatever is in the database; --json stays JSON."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from gateway.audit import records as audit
from gateway.audit.records import AuditEvent, RequestContext
from gateway.cli import output
from gateway.cli.main import main as gatewayctl
from gateway.model import Permission, Rendition, Viewer
from gateway.signing.issuance import SignItem
from tests.support import ADMIN, World

EVIL_MEDIA = "x\x1b[2J\r\n#999 2030-01-01T00:00:00Z key:revoked actor=root"
EVIL_AGENT = "curl\x1b]0;owned\x07\u202egnp.exe"


async def _cli(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str, str]:
    data_dir = str(world.services.config.data_dir)
    code = await asyncio.to_thread(gatewayctl, ["--data-dir", data_dir, "--actor", "tester", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_printable_escapes_controls_and_bidi_and_is_idempotent() -> None:
    assert (
        output.printable("a\x1b[31mb\tc\r\nd\x7f\x9b\u202e\u2028e")
        == "a\\x1b[31mb\\x09c\\x0d\\x0ad\\x7f\\x9b\\u202e\\u2028e"
    )
    assert output.printable(output.printable(EVIL_MEDIA)) == output.printable(EVIL_MEDIA)
    assert output.printable("plain id_1:@.-/ é") == "plain id_1:@.-/ é"


def test_table_columns_line_up_with_the_escaped_text() -> None:
    assert output.table([{"id": "a\x1bb", "n": 1}, {"id": "c", "n": 22}], ["id", "n"]) == [
        "ID      N ",
        "a\\x1bb  1 ",
        "c       22",
    ]


async def _plant(world: World) -> None:
    async with world.services.store.transaction() as tx:
        record = audit.change(ADMIN, AuditEvent.MEDIA_DELETED, now=world.clock(), media_id=EVIL_MEDIA)
        await world.services.audit_log.append(tx, [record], world.clock())


async def test_audit_tail_and_search_print_escapes_not_control_characters(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await _plant(world)
    code, out, _ = await _cli(capsys, world, "audit", "tail", "-n", "1")
    assert code == 0
    assert out.endswith(" media:deleted actor=test-admin media_id=x\\x1b[2J\\x0d\\x0a#999 2030-01-01T00:00:00Z "
                        "key:revoked actor=root\n")  # fmt: skip
    assert len(out.splitlines()) == 1 and "\x1b" not in out and "\r" not in out
    code, out, _ = await _cli(capsys, world, "audit", "search", "--media", EVIL_MEDIA)
    assert code == 0 and len(out.splitlines()) == 1 and "media_id=x\\x1b[2J\\x0d\\x0a#999" in out


async def test_json_output_stays_json_with_the_exact_value(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    await _plant(world)
    code, out, _ = await _cli(capsys, world, "audit", "tail", "-n", "1", "--json")
    assert code == 0 and json.loads(out)[0]["media_id"] == EVIL_MEDIA and "\x1b" not in out


async def test_incident_report_escapes_a_hostile_user_agent(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    key = await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    assert key is not None
    await world.media("m1", owner="alice")
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    ctx = RequestContext(actor="web", client_ip="198.51.100.7", user_agent=EVIL_AGENT)
    await world.services.issuer.issue(
        principal, Viewer("alice", source="asserted"), [SignItem("m1", Rendition.VIDEO)], ctx, world.clock()
    )
    code, out, _ = await _cli(capsys, world, "incident", "report", "--kid", key.kid)
    assert code == 0 and "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert " m1/video from 198.51.100.0/24 ua=curl\\x1b]0;owned\\x07\\u202egnp.exe\n" in out


async def test_keys_list_escapes_whatever_the_database_holds(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(world.services.config.sqlite_path, isolation_level=None)
    conn.execute("INSERT INTO principals VALUES ('ev\x1b[8mil', 'service', '[\"sign\"]', NULL, 1.0, NULL)")
    conn.execute("INSERT INTO keys (kid, principal_id, algorithm, sealed_private, created_at) "
                 "VALUES ('gwk_\x1b[2Jx', 'ev\x1b[8mil', 'ed25519', x'00', 1.0)")  # fmt: skip
    conn.close()
    code, out, _ = await _cli(capsys, world, "keys", "list")
    assert code == 0 and "\x1b" not in out
    assert "gwk_\\x1b[2Jx" in out and "ev\\x1b[8mil" in out


async def test_error_messages_are_escaped(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await _cli(capsys, world, "token", "--credential", "/tmp/\x1b[2Jnone.json")
    assert (code, err) == (2, "gatewayctl: credential file /tmp/\\x1b[2Jnone.json does not exist\n")
