"""The README's dialect table must name every registered dialect (documentation drift guard)."""

from __future__ import annotations

from pathlib import Path

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
    from gateway.config import _FIELDS

    table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    for section, key in _FIELDS:
        name = f"`{section}.{key}`" if section else f"`{key}`"
        assert any(name in line for line in table), f"README's configuration table misses {name}"


def test_readme_lists_every_cli_command() -> None:
    from gateway.cli.main import build_parser

    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for command in sub.choices:
        assert f"gatewayctl {command}" in readme or f"| {command}" in readme, command
