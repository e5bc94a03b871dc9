"""A data directory for the wrk harness: principals, keys, media, tokens and pre-signed URLs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gateway.access import tokens
from gateway.audit.records import RequestContext
from gateway.cli.main import main as gatewayctl
from gateway.config import load_config
from gateway.model import KeyAlgorithm, Permission, PrincipalKind, Rendition, Visibility
from gateway.services import Services, open_services
from gateway.signing.dialects.base import SignRequest
from gateway.signing.dialects.native import NativeDialect

CTX = RequestContext(actor="bench")
MEDIA = 100
DISTINCT_URLS = 450_000  # three runs of up to 150 000 requests, none repeated
# The sign rows' request body (benchmarks.run, profile, bench_handler_cpu, callgrind_verify): item m1 for alice.
SIGN_BODY = json.dumps({"media_id": "m1", "rendition": "video", "viewer": {"id": "alice", "workspaces": ["w1"]}})


@dataclass(frozen=True)
class Fixture:
    token: str
    viewer: str
    prefix_token: str
    distinct_file: Path


def init(data_dir: Path) -> None:
    """``gatewayctl init`` runs its own event loop: call it before ``prepare``."""
    assert gatewayctl(["init", "--data-dir", str(data_dir)]) == 0


async def principal_and_viewer(services: Services, now: float) -> tuple[str, str]:
    """Principal ``web`` (sign, on behalf, media) with an Ed25519 key, ``MEDIA`` items of alice's in workspace w1;
    the principal's bearer token and a viewer token for alice, each for an hour."""
    config = services.config
    permissions = frozenset({Permission.SIGN, Permission.SIGN_ON_BEHALF, Permission.MEDIA_WRITE})
    created = await services.admin.add_principal(CTX, "web", PrincipalKind.SERVICE, permissions, None, now)
    await services.admin.create_key(CTX, "web", KeyAlgorithm.ED25519, now)
    for i in range(MEDIA):
        paths = {Rendition.VIDEO: f"/v/m{i}/master.m3u8", Rendition.THUMBNAIL: f"/t/m{i}.jpg"}
        await services.admin.put_media(CTX, f"m{i}", "alice", "w1", Visibility.WORKSPACE, paths, now)
    token = tokens.mint_principal_token(
        credential_id=created.credential.id, principal_id="web", private_seed=created.credential_seed,
        audience=config.api_audience, now=now, ttl=3600,
    )  # fmt: skip
    idp = load_pem_private_key(config.dev_idp_key_path.read_bytes(), None)
    assert isinstance(idp, Ed25519PrivateKey)
    viewer = tokens.mint_viewer_token(
        private_key=idp, issuer=config.viewer.issuer, audience=config.viewer.audience, subject="alice",
        workspaces=["w1"], workspaces_claim=config.viewer.workspaces_claim, now=now, ttl=3600,
    )  # fmt: skip
    return token, viewer


async def prepare(data_dir: Path) -> Fixture:
    config = load_config(data_dir, environ={})
    services = await open_services(config)
    try:
        now = time.time()
        token, viewer = await principal_and_viewer(services, now)
        choice = await services.keyring.signing_key("web", now)
        dialect = NativeDialect()
        expires = int(now) + 3600
        issued = int(now)
        prefixed = dialect.sign(
            SignRequest(url="/v/m1/master.m3u8", expires=expires, prefix="/v/m1/", issued_at=issued), choice.material
        )
        distinct = data_dir / "distinct.txt"
        with distinct.open("w") as out:
            for i in range(DISTINCT_URLS):
                request = SignRequest(url=f"/v/m{i % MEDIA}/seg{i}.ts", expires=expires, issued_at=issued)
                signed = dialect.sign(request, choice.material)
                out.write(signed.url + "\n")
    finally:
        await services.close()
    return Fixture(token, viewer, urlsplit(prefixed.url).query, distinct)
