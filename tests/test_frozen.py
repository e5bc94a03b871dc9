"""``gateway.frozen.quick_init``: the one-call ``__init__`` must build what the dataclass's own builds (issue 18)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.authz import Decision
from gateway.audit.records import AuditRecord, RequestContext
from gateway.frozen import quick_init
from gateway.keys.keyring import SigningChoice
from gateway.keys.material import KeyMaterial
from gateway.signing.dialects.base import Redemption, Signed, SignRequest, Verified
from gateway.signing.issuance import Issued, Outcome, SignItem
from gateway.store.base import LogEntry, RawEntry

QUICK = [AuditRecord, RequestContext, Decision, SigningChoice, KeyMaterial, Redemption, Signed, SignRequest,
         Verified, Issued, Outcome, SignItem, LogEntry, RawEntry]  # fmt: skip


def _reference(cls: type) -> type:
    """The same fields under the dataclass's own generated ``__init__``."""
    specs = []
    for f in dataclasses.fields(cls):
        kwargs: dict[str, Any] = {"repr": f.repr, "compare": f.compare, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kwargs)))
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=True, eq=params.eq, repr=params.repr)


REFERENCES = {cls: _reference(cls) for cls in QUICK}
_values = st.one_of(st.none(), st.integers(), st.text(max_size=4), st.binary(max_size=4), st.just({"k": 1}))


def _built(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return cls(*args, **kwargs)
    except TypeError:
        return TypeError


@settings(max_examples=600)
@given(st.sampled_from(QUICK), st.data())
def test_quick_init_builds_what_the_generated_init_builds(cls: type, data: st.DataObject) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    given_names = data.draw(st.lists(st.sampled_from([*names, "bogus"]), unique=True))
    values = {name: data.draw(_values) for name in given_names}
    positional = data.draw(st.integers(0, len(given_names)))
    ordered = [n for n in names if n in values][:positional]  # a positional prefix must follow field order
    args = tuple(values[n] for n in ordered) + tuple(data.draw(st.lists(_values, max_size=2)))
    kwargs = {n: v for n, v in values.items() if n not in ordered}
    quick, reference = _built(cls, args, kwargs), _built(REFERENCES[cls], args, kwargs)
    if reference is TypeError:
        assert quick is TypeError
        return
    assert type(quick) is cls
    assert list(quick.__dict__.items()) == list(reference.__dict__.items())
    assert dataclasses.astuple(quick) == dataclasses.astuple(reference)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(quick, names[0], "changed")


def test_default_factories_give_each_instance_its_own() -> None:
    first, second = LogEntry(1, b"", 1.0, "viewer", None), LogEntry(2, b"", 1.0, "viewer", None)
    a, b = AuditRecord(1.0, "url:issued", "web"), AuditRecord(1.0, "url:issued", "web")  # type: ignore[arg-type]
    assert a.detail == {} and a.detail is not b.detail
    assert first == LogEntry(1, b"", 1.0, "viewer", None) and first != second


def test_it_refuses_what_it_cannot_copy_exactly() -> None:
    @dataclasses.dataclass
    class Mutable:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class KeywordOnly:
        x: int = dataclasses.field(kw_only=True)

    @dataclasses.dataclass(frozen=True)
    class Hidden:
        x: int = dataclasses.field(default=0, init=False)

    for cls in (Mutable, Slotted, Checked, KeywordOnly, Hidden, int):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)
