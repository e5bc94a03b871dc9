"""CPU per call of the pieces an issued URL pays for besides its signature, in-process (issue 18).

Run: .venv/bin/python -m benchmarks.bench_audit_parts

Each line is microseconds of this thread's CPU per call (``time.thread_time``, so time spent waiting for a
core a neighbour holds is not counted), the best of several runs. The pieces: an uncached caller token (a principal's
JWT verified from scratch), the subject's pseudonym, sealing the personal fields, the leaf's body hash
(canonical JSON + SHA-256) and the whole row preparation the writer gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.access import tokens
from gateway.audit import privacy
from gateway.audit import records as audit
from gateway.audit.records import RequestContext
from gateway.store import rows

_AUDIENCE = "media-gateway"


def _issued() -> audit.AuditRecord:
    ctx = RequestContext(actor="web", request_id="req_0123456789abcdef", client_ip="203.0.113.7",
                         user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")  # fmt: skip
    return audit.issued(
        ctx, now=time.time(), kid="gwk_0123456789ABCDEF", media_id="m1", rendition="video", subject="alice",
        url="https://cdn.example/v/m1/master.m3u8?gw_exp=1900000000&gw_kid=gwk_0123456789ABCDEF&gw_sig=" + "A" * 86,
        expires_at=1_900_000_000, reason="workspace-member",
        detail={"issuance_id": "gwi_0123456789abcdef01234567", "profile": "native", "dialect": "native"},
    )  # fmt: skip


def cpu_us(fn: Callable[[], object], calls: int = 2000, repeats: int = 7) -> float:
    """Microseconds of CPU per call, the best of ``repeats`` runs of ``calls`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time() - start) / calls * 1e6)
    return best


def measure() -> dict[str, float]:
    seed = Ed25519PrivateKey.generate()
    public = seed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = time.time()
    token = tokens.mint_principal_token(
        credential_id="gwc_0123456789", principal_id="web", private_seed=seed.private_bytes_raw(),
        audience=_AUDIENCE, now=now, ttl=3600,
    )  # fmt: skip

    def uncached_token() -> None:
        header = tokens.unverified_header(token)  # as gateway.access.identity reads a token it has not seen
        tokens.key_id_of(header)
        tokens.principal_claims(token, "web", public, _AUDIENCE, now, 86400, header)

    signature, verifier = seed.sign(b"x" * 160), seed.public_key()
    pepper, key = b"p" * 32, privacy.new_subject_key()
    record = _issued()
    ref = privacy.subject_ref(pepper, "alice")
    sealed = privacy.protect(record, ref, key)
    aead = privacy.cipher(key)
    parts = {
        "uncached caller token (parse + Ed25519 verify)": uncached_token,
        "Ed25519 verify alone": lambda: verifier.verify(signature, b"x" * 160),
        "subject pseudonym (HMAC)": lambda: privacy.subject_ref(pepper, "alice"),
        "seal personal fields (AES-GCM, new cipher)": lambda: privacy.protect(record, ref, key),
        "seal personal fields (AES-GCM, cipher reused)": lambda: privacy.protect(record, ref, aead),
        "leaf body hash (canonical JSON + SHA-256)": sealed.leaf_parts,
        "row preparation (values + leaf parts)": lambda: rows.prepare_rows([sealed]),
    }
    return {name: cpu_us(fn) for name, fn in parts.items()}


def main() -> None:
    for name, us in measure().items():
        print(f"{name:48} {us:8.1f} us")


if __name__ == "__main__":
    main()
