"""The in-memory state view: lookups the hot path makes, and applying changes to it."""

from __future__ import annotations

from gateway.model import Grant, KeyAlgorithm, SigningKey
from gateway.state.view import StateView
from gateway.store.base import RevokedPath


def _key(kid: str, created: float, principal: str = "svc", external: str | None = None) -> SigningKey:
    # Held without the sealed private half: the view never keeps private material (gateway.keys.keyring).
    return SigningKey(kid, principal, KeyAlgorithm.ED25519, b"", created, b"p" * 32, external_id=external)


def test_keys_of_a_principal_are_in_creation_order_and_relinking_moves_the_external_id() -> None:
    view = StateView()
    view.put_key(_key("gwk_b", 2.0))
    view.put_key(_key("gwk_a", 1.0, external="K1"))
    view.put_key(_key("gwk_c", 3.0, principal="other"))
    assert [k.kid for k in view.keys_of("svc")] == ["gwk_a", "gwk_b"]
    assert view.key_by_external_id("K1") == _key("gwk_a", 1.0, external="K1")
    view.put_key(_key("gwk_a", 1.0, external="K2"))
    assert view.key_by_external_id("K1") is None
    assert view.key_by_external_id("K2") is not None
    assert [k.kid for k in view.keys_of("svc")] == ["gwk_a", "gwk_b"]  # updated, not duplicated


def test_grants_are_found_by_pair_and_dropped_when_revoked_or_expired() -> None:
    view = StateView()
    live = Grant("gwg_1", "eng", "m1", "r", "a", 1.0, 100.0)
    view.put_grant(live)
    view.put_grant(Grant("gwg_2", "eng", "m1", "r", "a", 1.0, 10.0))
    view.put_grant(Grant("gwg_3", "eng", "m2", "r", "a", 1.0, 100.0))
    assert {g.id for g in view.grants_for("eng", "m1")} == {"gwg_1", "gwg_2"}
    view.put_grant(Grant("gwg_3", "eng", "m2", "r", "a", 1.0, 100.0, revoked_at=5.0))
    assert view.grants_for("eng", "m2") == []
    view.drop_expired_grants(50.0)
    assert view.grants_for("eng", "m1") == [live]


def _revoked(media_id: str, at: float, *paths: str, prefixes: tuple[str, ...] = ()) -> list[RevokedPath]:
    return [RevokedPath(media_id, p, False, at) for p in paths] + [RevokedPath(media_id, p, True, at) for p in prefixes]


def test_link_revocations_cover_exact_paths_and_prefix_directories_newest_first() -> None:
    view = StateView()
    assert view.links_revoked_at("/v/a/seg1.ts") is None
    view.put_link_revocations("a", _revoked("a", 10.0, "/v/a/master.m3u8", "/t/a.jpg", prefixes=("/v/a/",)))
    assert view.links_revoked_at("/v/a/master.m3u8") == 10.0
    assert view.links_revoked_at("/v/a/seg1.ts") == 10.0  # under the prefix a prefix token covered
    assert view.links_revoked_at("/t/a.jpg") == 10.0
    assert view.links_revoked_at("/t/b.jpg") is None  # a sibling in a shared directory is not covered
    assert view.links_revoked_at("/v/ab/seg1.ts") is None
    view.put_link_revocations("a", _revoked("a", 20.0, "/v/a/master.m3u8", prefixes=("/v/a/",)))
    assert view.links_revoked_at("/v/a/seg1.ts") == 20.0
    assert view.links_revoked_at("/t/a.jpg") is None  # replaced: what the store now says about the item


def test_a_path_shared_by_two_items_keeps_the_other_items_revocation_when_one_is_cleared() -> None:
    view = StateView()
    view.put_link_revocations("a", _revoked("a", 10.0, "/v/shared.mp4"))
    view.put_link_revocations("b", _revoked("b", 5.0, "/v/shared.mp4"))
    assert view.links_revoked_at("/v/shared.mp4") == 10.0
    view.put_link_revocations("a", [])
    assert view.links_revoked_at("/v/shared.mp4") == 5.0
    view.put_link_revocations("b", [])
    assert view.links_revoked_at("/v/shared.mp4") is None


def test_the_view_never_holds_a_keys_sealed_private_half() -> None:
    view = StateView()
    view.put_key(SigningKey("gwk_s", "svc", KeyAlgorithm.ED25519, b"\x02sealed-blob", 1.0, b"p" * 32))
    assert view.keys["gwk_s"].sealed_private == b""
    assert view.keys_of("svc")[0].sealed_private == b""
