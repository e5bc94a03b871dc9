"""Helpers for audit-log tests: fill the log through the real issuer, and tamper with SQLite directly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.audit.checkpoints import load_public_keys
from gateway.audit.verify import Report, verify_log
from gateway.model import Permission, Rendition, Viewer
from gateway.services import Services
from gateway.signing.issuance import SignItem
from tests.support import ADMIN, World


async def fill(world: World, count: int, viewer: str = "alice", media: str = "m1") -> None:
    if await world.services.store.principals.get("web") is None:
        await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    if await world.services.store.media.get(media) is None:
        await world.media(media, owner=viewer)
    principal = await world.services.store.principals.get("web")
    assert principal is not None
    for _ in range(count):
        item = SignItem(media, Rendition.THUMBNAIL)
        await world.services.issuer.issue(principal, Viewer(viewer, source="asserted"), [item], ADMIN, world.clock())
        world.clock.advance(1)


async def verify(services: Services) -> Report:
    keys = load_public_keys([services.config.log_signing_key_path.with_suffix(".pub")])
    return await verify_log(
        services.store, keys, services.config.export_dir, now=services.clock(), key_opens=services.audit_log.key_opens
    )


def db(services: Services) -> sqlite3.Connection:
    return sqlite3.connect(Path(services.config.sqlite_path), isolation_level=None)
