"""gatewayctl audit verify|checkpoint|prune|search and subject export|erase, against a real data directory."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from gateway.cli.main import main as gatewayctl
from tests.audit_support import db, fill
from tests.support import World


async def cli(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> tuple[int, str, str]:
    data_dir = str(world.services.config.data_dir)
    code = await asyncio.to_thread(gatewayctl, ["--data-dir", data_dir, "--actor", "tester", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def test_verify_is_green_then_names_the_edited_record(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    await fill(world, 10)
    code, out, _ = await cli(capsys, world, "audit", "checkpoint", "--json")
    assert code == 0 and json.loads(out)["tree_size"] == 15
    code, out, _ = await cli(capsys, world, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] and json.loads(out)["records"] == 15
    db(world.services).execute("UPDATE audit SET rendition = 'video' WHERE seq = 8")
    code, out, _ = await cli(capsys, world, "audit", "verify")
    assert code == 1 and out.startswith("FAILED at record #8:") and "altered" in out


async def test_verify_progress_bar_goes_to_stderr(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    await fill(world, 3)
    code, out, err = await cli(capsys, world, "audit", "verify", "--progress")
    assert code == 0 and out.startswith("ok: 8 records")
    assert "100% 8/8" in err


async def test_search_by_a_viewers_real_id_finds_their_pseudonymous_records(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(world, 2, viewer="alice", media="m1")
    await fill(world, 3, viewer="bob", media="m2")
    code, out, _ = await cli(capsys, world, "audit", "search", "--event", "url:issued", "--subject", "bob", "--json")
    found = json.loads(out)
    assert code == 0 and len(found) == 3
    assert {r["subject"] for r in found} == {found[0]["subject"]} and found[0]["subject"].startswith("sub_")
    code, out, _ = await cli(capsys, world, "audit", "search", "--subject", found[0]["subject"], "--json")
    assert len([r for r in json.loads(out) if r["event"] == "url:issued"]) == 3


async def test_subject_export_erase_and_prune_keep_verify_green(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Records from 400 days ago: the CLI prunes by the real clock (it refuses a --now in the future).
    world.clock.now = time.time() - 400 * 86400
    await fill(world, 4, viewer="bob", media="film")
    out_file = tmp_path / "bob.json"
    code, out, _ = await cli(capsys, world, "subject", "export", "bob", "--out", str(out_file))
    assert code == 0 and "wrote" in out
    assert os.stat(out_file).st_mode & 0o777 == 0o600
    exported = json.loads(out_file.read_text())
    assert [m["id"] for m in exported["media_owned"]] == ["film"]
    code, _, err = await cli(capsys, world, "subject", "export", "bob", "--out", str(out_file))
    assert code == 4 and "already exists" in err and "Traceback" not in err
    code, out, _ = await cli(capsys, world, "audit", "search", "--event", "subject:exported", "--json")
    assert len(json.loads(out)) == 1  # the refused export was not audited as done
    code, out, _ = await cli(capsys, world, "subject", "erase", "bob", "--reason", "ticket 9", "--json")
    assert code == 0 and json.loads(out)["media_deleted"] == 1
    assert (await cli(capsys, world, "audit", "checkpoint"))[0] == 0
    code, out, _ = await cli(capsys, world, "audit", "prune", "--json")
    assert code == 0 and json.loads(out)["records_pruned"] >= 4
    code, out, _ = await cli(capsys, world, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    code, out, _ = await cli(capsys, world, "audit", "search", "--event", "subject:erased", "--json")
    assert [r["reason"] for r in json.loads(out)] == ["ticket 9"]


async def test_incident_report_file_is_private(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await fill(world, 1)
    [key] = await world.services.store.keys.all("web")
    report = tmp_path / "incident.json"
    code, _, _ = await cli(capsys, world, "incident", "report", "--kid", key.kid, "--json", str(report))
    assert code == 0 and os.stat(report).st_mode & 0o777 == 0o600
    assert json.loads(report.read_text())["affected_subjects"] == ["alice"]
