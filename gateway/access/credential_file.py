"""A principal's credential file: the private half of its API credential, kept by its owner (mode 0600).

Written by ``gatewayctl principals add`` and ``credentials rotate``; read by
``gatewayctl token``, the demo's backend and ``gateway.client`` to mint
principal tokens (``gateway.access.tokens.mint_principal_token``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import InvalidInput
from gateway.keys.material import b64url, b64url_decode
from gateway.strictjson import loads

__all__ = ["CredentialFile", "read_credential"]


@dataclass(frozen=True)
class CredentialFile:
    principal: str
    credential_id: str
    seed: bytes = field(repr=False)  # the private half: never printed
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


def read_credential(path: Path) -> CredentialFile:
    try:
        data = loads(path.read_text())
        return CredentialFile(
            principal=data["principal"],
            credential_id=data["credential_id"],
            seed=b64url_decode(data["private_key"]),
            audience=data["audience"],
        )
    except FileNotFoundError:
        raise InvalidInput(f"credential file {path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read credential file {path}: {exc.strerror}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a gateway credential file: {exc}") from None
