"""The README's dialect table must name every registered dialect (documentation drift guard)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.signing.dialects import default_registry

ROOT = Path(__file__).parent.parent


def test_readme_dialect_table_lists_every_dialect() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `")}
    assert set(default_registry().names()) <= rows


def test_every_dialect_documents_its_key_file_and_revocation() -> None:
    for dialect in default_registry().all():
        assert dialect.load_key.__doc__, dialect.name
        assert dialect.capabilities.revocation, dialect.name


def test_readme_configuration_table_lists_every_key() -> None:
    from gateway.config.settings import FIELDS

    table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    for section, key in FIELDS:
        name = f"`{section}.{key}`" if section else f"`{key}`"
        assert any(name in line for line in table), f"README's configuration table misses {name}"


def test_readme_lists_every_cli_command() -> None:
    from gateway.cli.main import build_parser

    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for command in sub.choices:
        assert f"gatewayctl {command}" in readme or f"| {command}" in readme, command


# --- generated from the code: the endpoint table, the command list, docs/cli.md (issue 19, item 14) ----


def test_the_generated_documentation_is_up_to_date() -> None:
    from tools import docs

    assert [str(path.relative_to(ROOT)) for path in docs.stale()] == [], "run: python -m tools.docs"


def test_a_stale_generated_part_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import docs

    readme, reference = tmp_path / "README.md", tmp_path / "cli.md"
    readme.write_text((ROOT / "README.md").read_text().replace("| `GET /healthz` |", "| `GET /health` |"))
    reference.write_text(docs.cli_reference())
    monkeypatch.setattr(docs, "ROOT", tmp_path)
    monkeypatch.setattr(docs, "README", readme)
    monkeypatch.setattr(docs, "CLI_REFERENCE", reference)
    assert docs.main(["--check"]) == 1
    assert capsys.readouterr().err == "README.md is out of date: run python -m tools.docs\n"
    assert docs.main([]) == 0 and docs.main(["--check"]) == 0
    assert "| `GET /healthz` |" in readme.read_text()


def test_the_endpoint_table_has_every_route_with_its_answer() -> None:
    from gateway.web.openapi import path_of
    from gateway.web.routes import ROUTES

    rows = {line.split(" | ")[0].strip("| `"): line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| `") and " /" in line.split(" | ")[0]}  # fmt: skip
    for route in ROUTES:
        assert f"{'GET' if route.method == '*' else route.method} {path_of(route.path)}" in rows
    assert "status, url, expires_at, kid, issuance_id, profile, cookies?}" in rows["POST /v1/sign"]
    assert "body `{reason}`" in rows["POST /v1/media/{media_id}/revoke-links"]


def test_the_command_list_names_every_command_and_action() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "gatewayctl media put|revoke-links|show|delete" in readme
    reference = (ROOT / "docs" / "cli.md").read_text()
    assert "### gatewayctl media revoke-links" in reference and "## gatewayctl completion" in reference
