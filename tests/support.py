"""Test helpers: a settable clock and a small world of principals, keys, media and tokens."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.access import tokens
from gateway.audit.records import RequestContext
from gateway.cli.main import main as gatewayctl
from gateway.config import Config, load_config
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, SigningKey, Visibility
from gateway.services import Services

T0 = 1_800_000_000.0
ADMIN = RequestContext(actor="test-admin")


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def init_data_dir(path: Path) -> Config:
    """A data directory exactly as ``gatewayctl init`` leaves it.

    ``init`` runs once per test process, into a template; each test gets its own copy of the files (a few
    file copies instead of key generation, database creation and migrations every time). ``init`` itself is
    tested by calling it (tests/test_cli.py, tests/test_cli_failures.py). A directory that already holds
    something (a gateway.toml naming PostgreSQL) is initialised for real: init reads what is there.
    """
    if path.exists() and any(path.iterdir()):
        assert gatewayctl(["init", "--data-dir", str(path)]) == 0
    else:
        copy_tree(_init_template(), path)
    return load_config(path, environ={})


_templates: dict[str, Path] = {}


def _init_template() -> Path:
    if "init" not in _templates:
        template = private_temp_dir("gateway-init-template-")
        assert gatewayctl(["init", "--data-dir", str(template)]) == 0
        _templates["init"] = template
    return _templates["init"]


def private_temp_dir(prefix: str) -> Path:
    """A directory for this test process's templates, removed when it exits."""
    made = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, made, True)
    return made


def copy_tree(source: Path, target: Path) -> None:
    """Copy files and their modes (owner-only stays owner-only) into ``target``, which may exist."""
    shutil.copytree(source, target, dirs_exist_ok=True, copy_function=shutil.copy2)


@dataclass
class World:
    services: Services
    clock: Clock
    seeds: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    async def principal(
        self,
        pid: str,
        *perms: Permission,
        kind: PrincipalKind = PrincipalKind.SERVICE,
        renditions: set[Rendition] | None = None,
        key: KeyAlgorithm | None = KeyAlgorithm.ED25519,
    ) -> SigningKey | None:
        created = await self.services.admin.add_principal(
            ADMIN, pid, kind, frozenset(perms or {Permission.SIGN}),
            None if renditions is None else frozenset(renditions), self.clock(),
        )  # fmt: skip
        self.seeds[pid] = (created.credential.id, created.credential_seed)
        if key is None:
            return None
        return await self.services.admin.create_key(ADMIN, pid, key, self.clock())

    def token(self, pid: str, ttl: int = 600, audience: str | None = None) -> str:
        credential_id, seed = self.seeds[pid]
        return tokens.mint_principal_token(
            credential_id=credential_id, principal_id=pid, private_seed=seed,
            audience=audience or self.services.config.api_audience, now=self.clock(), ttl=ttl,
        )  # fmt: skip

    def auth(self, pid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(pid)}"}

    def viewer_token(self, subject: str, *workspaces: str, ttl: int = 600) -> str:
        config = self.services.config
        key = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        return tokens.mint_viewer_token(
            private_key=key, issuer=config.viewer.issuer, audience=config.viewer.audience,
            subject=subject, workspaces=list(workspaces), workspaces_claim=config.viewer.workspaces_claim,
            now=self.clock(), ttl=ttl,
        )  # fmt: skip

    async def media(
        self,
        media_id: str,
        owner: str = "alice",
        workspace: str = "w1",
        visibility: Visibility = Visibility.PRIVATE,
    ) -> None:
        paths = {Rendition.VIDEO: f"/v/{media_id}/master.m3u8", Rendition.THUMBNAIL: f"/t/{media_id}.jpg"}
        await self.services.admin.put_media(ADMIN, media_id, owner, workspace, visibility, paths, self.clock())


def wall_clock() -> float:
    return time.time()


def sqlite_at_version(path: Path, version: int) -> None:
    """Turn a gateway database into what schema ``version`` held: its tables, with the rows (and the columns)
    that version had, as an older gateway would have left it. For migration tests."""
    import sqlite3

    from gateway.store.sqlite.schema import MIGRATIONS

    old = path.with_suffix(".current")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file to move aside
    path.rename(old)
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS:
        if migration.version <= version:
            for statement in migration.statements:
                conn.execute(statement)
    conn.execute("ATTACH DATABASE ? AS current", (str(old),))
    tables = [row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table == "sqlite_sequence":
            continue
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA main.table_info({table})"))
        copy = f"INSERT OR REPLACE INTO main.{table} ({columns}) SELECT {columns} FROM current.{table}"  # noqa: S608 (names from the schema itself)
        conn.execute(copy)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    conn.execute("DETACH DATABASE current")
    conn.close()
    old.unlink()
