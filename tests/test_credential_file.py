"""A principal's credential file (``gateway.access.credential_file``): round trip and every refusal, by message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.access.credential_file import CredentialFile, read_credential
from gateway.errors import InvalidInput
from gateway.keys.material import b64url


def test_a_written_credential_file_reads_back_exactly(tmp_path: Path) -> None:
    credential = CredentialFile("web", "gwc_1", bytes(range(32)), "media-gateway")
    path = tmp_path / "web.json"
    path.write_text(credential.to_json())
    assert read_credential(path) == credential
    assert path.read_text() == (
        '{\n  "principal": "web",\n  "credential_id": "gwc_1",\n  "private_key": '
        f'"{b64url(bytes(range(32)))}",\n  "audience": "media-gateway"\n}}'
    )


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^credential file .*nope\.json does not exist$"):
        read_credential(tmp_path / "nope.json")


def test_an_unreadable_path_says_why(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^cannot read credential file .*: Is a directory$"):
        read_credential(tmp_path)


@pytest.mark.parametrize("text", ["not json", "[]", '{"principal": "web"}', '{"principal": "web", "credential_id": '
                                  '"c", "private_key": "!!", "audience": "a"}'])  # fmt: skip
def test_anything_else_is_not_a_credential_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=r"^.*bad\.json is not a gateway credential file: "):
        read_credential(path)


def test_the_private_half_is_never_printed() -> None:
    credential = CredentialFile("web", "gwc_1", b"\x01" * 32, "media-gateway")
    assert "seed" not in repr(credential) and repr(b"\x01" * 32) not in repr(credential)


def test_a_credential_file_is_frozen() -> None:
    credential = CredentialFile("web", "gwc_1", b"\x01" * 32, "media-gateway")
    with pytest.raises(dataclasses.FrozenInstanceError):
        credential.principal = "other"  # type: ignore[misc]
