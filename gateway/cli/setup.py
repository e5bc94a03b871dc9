"""init and token: setting up the embedded default, minting JWTs (serve is in ``serve``)."""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from gateway import redact
from gateway.access import tokens
from gateway.access.credential_file import read_credential
from gateway.audit.checkpoints import LogSigner
from gateway.cli import context
from gateway.cli.output import emit, write_private
from gateway.cli.timeparse import duration
from gateway.config import CONFIG_FILE, DEV_IDP_ISSUER, Config
from gateway.errors import ConfigError, GatewayError, InvalidInput
from gateway.keys.sealing import LocalMasterKey
from gateway.model import KeyAlgorithm, Permission, PrincipalKind
from gateway.services import Services, open_services
from gateway.store import files, is_postgres, open_store

DEV_VIEWER_AUDIENCE = "media-gateway-viewers"
_DEV_CONFIG = f"""\
# Written by 'gatewayctl init'. DEVELOPMENT settings: the viewer identity
# provider below is a local development key that 'gatewayctl token --viewer'
# signs with. With environment = "production" the gateway refuses to start
# until [viewer] names your real identity provider.
environment = "development"

[server]
host = "127.0.0.1"
port = 8080

[signing]
cdn_base_url = "https://cdn.example.com"
default_ttl = 300
max_ttl = 3600
cache_window = 60     # one URL per minute for the same request, so browsers and CDNs cache it; 0: off

[viewer]
issuer = "{DEV_IDP_ISSUER}"
audience = "{DEV_VIEWER_AUDIENCE}"
public_key_file = "keys/dev-idp.pub"

[proxy]
trusted = ["127.0.0.1/32", "::1/128"]
"""


def _write_dev_idp(config: Config) -> bool:
    private_path = config.dev_idp_key_path
    if private_path.exists():
        return False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    write_private(private_path, pem.strip())
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    files.replace_private(private_path.with_suffix(".pub"), public)
    return True


def _write_config(path: Path) -> bool:
    try:
        files.create_private(path, _DEV_CONFIG.encode())
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return True


class _Made:
    """What this ``init`` created, removed again when it fails: a failed init leaves nothing new behind."""

    def __init__(self) -> None:
        self._paths: list[Path] = []
        self._families: list[tuple[Path, set[Path]]] = []

    @contextlib.contextmanager
    def creating(self, *paths: Path) -> Iterator[None]:
        absent = [path for path in paths if not path.exists()]
        try:
            yield
        finally:
            self._paths += [path for path in absent if path.exists()]

    def family(self, path: Path) -> None:
        """``path`` and whatever appears beside it under its name (``-wal``, ``-shm``, lock files)."""
        self._families.append((path, set(path.parent.glob(glob.escape(path.name) + "*"))))

    def undo(self) -> None:
        made = list(self._paths)
        for path, before in self._families:
            made += [p for p in path.parent.glob(glob.escape(path.name) + "*") if p not in before]
        for path in sorted(made, key=lambda p: len(p.parts), reverse=True):  # what is inside a directory first
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


async def run_init(args: argparse.Namespace) -> int:
    data_dir = context.data_dir(args)
    made = _Made()
    try:
        config, created = await _initialise(args, data_dir, made)
    except BaseException:
        made.undo()
        raise
    summary: dict[str, Any] = {
        "data_dir": str(data_dir),
        "created": created,
        "database": database_shown(config),
    }
    lines = [f"gateway initialised in {data_dir}"] + [f"  created {c}" for c in created]
    emit(summary, as_json=args.json, text=lines if created else [f"{data_dir} is already initialised"])
    return 0


async def _initialise(args: argparse.Namespace, data_dir: Path, made: _Made) -> tuple[Config, list[str]]:
    keys_dir = data_dir / "keys"
    with made.creating(*keys_dir.parents, keys_dir):
        files.private_dirs(keys_dir)  # the data directory too, when init creates it
    os.chmod(keys_dir, files.PRIVATE_DIR)
    created: list[str] = []
    config_path = context.config_file(args) or data_dir / CONFIG_FILE
    with made.creating(config_path):
        if _write_config(config_path):
            created.append(str(config_path))
    config = context.load(args, creating=True)
    if not is_postgres(config):
        made.family(config.sqlite_path)
        if not config.sqlite_path.exists():
            created.append(str(config.sqlite_path))
    with made.creating(*config.sqlite_path.parents):
        store = await open_store(config, create=True)  # the one command that may create the database
    await store.close()
    signing_key = config.log_signing_key_path
    with made.creating(config.master_key_path, signing_key, signing_key.with_suffix(".pub")):
        new_master = LocalMasterKey.create(config.master_key_path)
        if new_master:
            created.append(str(config.master_key_path))
        if LogSigner.create(signing_key):
            created.append(f"{signing_key} (signs audit checkpoints; copy the .pub off-box)")
    dev_idp = config.dev_idp_key_path
    with made.creating(dev_idp, dev_idp.with_suffix(".pub")):
        if config.viewer.issuer == DEV_IDP_ISSUER and _write_dev_idp(config):
            created.append(str(dev_idp))
    try:
        services = await open_services(config)
    except GatewayError as exc:
        if not new_master:
            raise
        hint = ("; this database was set up by another data directory: copy its keys/master.key and "
                "keys/log-signing.key here, then run 'gatewayctl init' again")  # fmt: skip
        raise type(exc)(exc.message + hint) from None
    try:
        if await services.store.principals.get(config.pages_principal) is None:
            await _add_pages_principal(args, config, services)
            created.append(f"principal {config.pages_principal} (signs page-URL redirects) with its key")
    finally:
        await services.close()
    return config, created


async def _add_pages_principal(args: argparse.Namespace, config: Config, services: Services) -> None:
    ctx = context.Cli(args, config, services, time.time()).ctx
    permissions = frozenset({Permission.SIGN})
    await services.admin.add_principal(
        ctx, config.pages_principal, PrincipalKind.SERVICE, permissions, None, time.time()
    )
    await services.admin.create_key(ctx, config.pages_principal, KeyAlgorithm.ED25519, time.time())


def database_shown(config: Config) -> str:
    """The database as output may show it: a PostgreSQL URL with its password masked."""
    return redact.url(config.database_url) if is_postgres(config) else str(config.sqlite_path)


def _viewer_token(args: argparse.Namespace, config: Config, ttl: int) -> str:
    if config.viewer.issuer != DEV_IDP_ISSUER:
        if not (context.config_file(args) or config.data_dir / CONFIG_FILE).exists():
            raise ConfigError(
                f"{config.data_dir} is not initialised: run 'gatewayctl init' (it sets up the development "
                "identity provider that 'token --viewer' signs with)"
            )
        raise ConfigError("viewer tokens come from your identity provider; the development IdP is not configured")
    try:
        key = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None)
    except FileNotFoundError:
        raise ConfigError(f"{config.dev_idp_key_path} is missing: run 'gatewayctl init'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{config.dev_idp_key_path} is not an Ed25519 key")
    return tokens.mint_viewer_token(
        private_key=key,
        issuer=config.viewer.issuer,
        audience=config.viewer.audience,
        subject=args.viewer,
        workspaces=args.workspace or [],
        workspaces_claim=config.viewer.workspaces_claim,
        now=time.time(),
        ttl=ttl,
    )


async def run_migrate(args: argparse.Namespace) -> int:
    """Bring the database schema up to this gateway's version (each step in its own transaction)."""
    config = context.load(args)
    store = await open_store(config, migrate=True)
    applied = store.applied_migrations
    await store.close()
    where = database_shown(config)
    text = f"migrated {where} to schema v{applied[-1]}" if applied else f"{where} is already at the current schema"
    emit({"database": where, "applied": applied}, as_json=args.json, text=text)
    return 0


async def run_token(args: argparse.Namespace) -> int:
    config = context.load(args)
    ttl = duration(args.ttl)
    if (args.credential is None) == (args.viewer is None):
        raise InvalidInput("give exactly one of --credential FILE or --viewer SUBJECT")
    if args.viewer is not None:
        token = _viewer_token(args, config, ttl)
    else:
        if ttl > config.max_token_lifetime:
            raise InvalidInput(f"--ttl exceeds api.max_token_lifetime ({config.max_token_lifetime}s)")
        credential = read_credential(Path(args.credential))
        token = tokens.mint_principal_token(
            credential_id=credential.credential_id,
            principal_id=credential.principal,
            private_seed=credential.seed,
            audience=credential.audience,
            now=time.time(),
            ttl=ttl,
        )
    emit({"token": token, "ttl": ttl}, as_json=args.json, text=token)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = context.common_parser(actor=False)  # commands that change nothing: no --actor
    init = sub.add_parser(
        "init",
        parents=[common],
        help="create the data directory, master key, config, database and dev IdP (idempotent)",
        description="Set up the embedded default in --data-dir: keys/master.key (mode 0600), "
        "gateway.toml (development settings), gateway.db, a development identity-provider key "
        "and the 'pages' principal that signs page-URL redirects. Existing files are kept.",
    )
    init.set_defaults(func=run_init)
    migrate = sub.add_parser(
        "migrate",
        parents=[reading],
        help="apply pending database schema migrations (run once after upgrading, before serving)",
        description="Bring the database (database.url: SQLite or PostgreSQL) up to this gateway's schema "
        "version. Each migration runs in its own transaction; replicas refuse to start on a schema that is "
        "behind. Safe to run again, and from several hosts at once (PostgreSQL serialises them).",
    )
    migrate.set_defaults(func=run_migrate)
    token = sub.add_parser(
        "token",
        parents=[reading],
        help="mint a principal's API token, or a development viewer token",
        description="--credential FILE: a short-lived Bearer JWT for the HTTP API, signed with the "
        "principal's credential (EdDSA). --viewer SUBJECT: a viewer token from the DEVELOPMENT "
        "identity provider created by 'init' (refused when a real IdP is configured).",
    )
    token.add_argument("--credential", metavar="FILE", help="principal credential file")
    token.add_argument("--viewer", metavar="SUBJECT", help="viewer subject (development IdP only)")
    token.add_argument("--workspace", action="append", metavar="ID", help="viewer workspace (repeatable)")
    token.add_argument("--ttl", default="15m", help="lifetime, e.g. 90s, 15m, 1h (default 15m)")
    token.set_defaults(func=run_token)
