"""The leaf's cheap checks of when msgspec spells a record as ``json`` does, against the checks they replaced
(issue 18): the float test without ``repr`` where it cannot hold an exponent, the record-shape test remembered
per (names, types), ``find`` for ``in`` on the encoded bytes."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import leaf


def _reference_float(value: float) -> bool:
    return math.isfinite(value) and "e" not in float.__repr__(value)


_edges = st.sampled_from([0.0, -0.0, 1.0, 1e-4, 9.999e-5, 1e15, 1e16, 9999999999999998.0, 9999999999999999.0,
                          1e15 - 0.5, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308])  # fmt: skip


@settings(max_examples=2000)
@given(st.floats() | _edges | st.floats(min_value=1e14, max_value=1e17) | st.floats(min_value=-1e-3, max_value=1e-3))
def test_the_float_check_is_the_repr_check(value: float) -> None:
    assert leaf._plain_float(value) is _reference_float(value)
    assert leaf._plain_float(-value) is _reference_float(-value)


def _reference_besides_detail(data: dict[str, Any]) -> bool:
    return leaf._plain_values({name: value for name, value in data.items() if name != "detail"})


_value: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.floats() | _edges
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2) | st.lists(st.integers(), max_size=2)
)  # fmt: skip
_names = st.sampled_from(["time", "detail", "event", "kid", "seq", "actor", "x"])


@settings(max_examples=1500)
@given(st.dictionaries(_names, _value, max_size=7), st.floats() | _edges, st.booleans())
def test_the_remembered_shape_check_is_the_walk(data: dict[str, Any], time: float, usual: bool) -> None:
    if usual:  # the issuer's records: a float time and a dict detail
        data = {**data, "time": time, "detail": {"a": 1}}
    assert leaf._plain_besides_detail(data) is _reference_besides_detail(data)


@given(st.binary(max_size=40))
def test_find_is_contains(out: bytes) -> None:
    assert leaf._same_in_json(out) is (out.isascii() and b"\\" not in out and b"\x7f" not in out)
