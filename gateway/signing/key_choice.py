"""Which key signs for a principal: ``Keyring.signing_key``'s choice, remembered while choosing again would give
the same (issue 18: choosing costs more than a request can spare, and nearly every call asks the same).

Two memories, both checked against the state view, so that a key revoked, created or expired changes the very
next choice (every key change moves the view's ``seq``; a reload makes a new view):

- per call, per kind of profile (a batch's items): kept while the view is the one it was chosen from;
- between calls, per principal and kind of profile (bounded): kept while the view has not moved, time has not
  gone back, and the key is still active. In one view the active keys only drop out as time passes, so the
  newest of them stays the newest while it stays active.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.keys.keyring import Keyring, SigningChoice
from gateway.model import KeyAlgorithm, KeyState
from gateway.state.sync import StateSync
from gateway.state.view import StateView

CHOICES = 1024  # principals whose signing key is remembered between calls (a few hundred bytes each)
# What a key is chosen for: the profile's algorithms (None: any) and whether it needs an external key id.
Wanted = tuple[tuple[KeyAlgorithm, ...] | None, bool]
# A call's own memory: what it chose for each kind of profile, and from which view at which seq.
CallKeys = dict[Wanted, tuple[StateView, int, SigningChoice]]


class _Kept(NamedTuple):
    """A principal's signing key as ``Keyring.signing_key`` chose it at ``now`` from ``view`` at ``seq``."""

    view: StateView
    seq: int
    now: float
    choice: SigningChoice


class KeyChoices:
    def __init__(self, state: StateSync, keyring: Keyring) -> None:
        self._state = state
        self._keyring = keyring
        self._kept: dict[tuple[str, tuple[KeyAlgorithm, ...] | None, bool], _Kept] = {}

    def __len__(self) -> int:
        return len(self._kept)

    async def choose(self, principal_id: str, now: float, wanted: Wanted, call: CallKeys) -> SigningChoice:
        """``Keyring.signing_key`` for ``principal_id`` at ``now``, from the call's memory or this one's while
        the view stays as it was."""
        view = self._state.view
        kept = call.get(wanted)
        if kept is not None and kept[0] is view and kept[1] == view.seq:
            return kept[2]
        seq = view.seq
        remembered = (principal_id, *wanted)
        choice = _still_chosen(self._kept.get(remembered), view, now)
        if choice is None:
            choice = await self._keyring.signing_key(principal_id, now, *wanted)
        if self._state.view is view and view.seq == seq:  # the secret's first read may have let a change in
            call[wanted] = (view, seq, choice)
            if len(self._kept) >= CHOICES:
                self._kept.clear()  # bounded; choosing again is a few µs, only not per request
            self._kept[remembered] = _Kept(view, seq, now, choice)
        return choice


def _still_chosen(kept: _Kept | None, view: StateView, now: float) -> SigningChoice | None:
    """The remembered choice if choosing again now would give the same (the module's rules)."""
    if kept is None or kept.view is not view or kept.seq != view.seq or now < kept.now:
        return None
    return kept.choice if kept.choice.row.state(now) is KeyState.ACTIVE else None
