"""The README's dialect table must name every registered dialect (documentation drift guard)."""

from __future__ import annotations

from pathlib import Path

from gateway.dialects import default_registry

ROOT = Path(__file__).parent.parent


def test_readme_dialect_table_lists_every_dialect() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `")}
    assert set(default_registry().names()) <= rows


def test_every_dialect_documents_its_key_file_and_revocation() -> None:
    for dialect in default_registry().all():
        assert dialect.load_key.__doc__, dialect.name
        assert dialect.capabilities.revocation, dialect.name
