"""Principal credential files: the private half of an API credential, kept by its owner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import Conflict, InvalidInput
from gateway.keys.material import b64url, b64url_decode


@dataclass(frozen=True)
class CredentialFile:
    principal: str
    credential_id: str
    seed: bytes
    audience: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "principal": self.principal,
                "credential_id": self.credential_id,
                "private_key": b64url(self.seed),
                "audience": self.audience,
            },
            indent=2,
        )


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists; choose a new file (it is never overwritten)") from None
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def read_credential(path: Path) -> CredentialFile:
    try:
        data = json.loads(path.read_text())
        return CredentialFile(
            principal=data["principal"],
            credential_id=data["credential_id"],
            seed=b64url_decode(data["private_key"]),
            audience=data["audience"],
        )
    except FileNotFoundError:
        raise InvalidInput(f"credential file {path} does not exist") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a gateway credential file: {exc}") from None
