"""Frozen dataclasses built at the cost of a plain one, for the values every request creates (issue 18).

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__`` (its own
``__setattr__`` refuses): about 0.1 µs a field, so a sign request's dozen small value objects cost several µs
more than plain ones would. ``quick_init`` gives a frozen dataclass an ``__init__`` that fills the instance
dict in one call instead: the same parameters, defaults and default factories, the same instance dict in
field order, so equality, hashing, ``repr``, ``dataclasses.replace`` and the refusal to assign are unchanged
(tests/test_frozen.py compares it with the generated one). Classes it cannot copy exactly — slots (no
instance dict), ``__post_init__``, init-only or keyword-only fields, fields left out of ``__init__`` — are
refused when the class is defined.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FACTORY = object()  # a default factory's parameter default: call the factory (as dataclasses' own sentinel)


def quick_init(cls: type[T]) -> type[T]:
    """Replace the frozen dataclass ``cls``'s ``__init__`` with one that fills its instance dict at once."""
    params = _dataclass_params(cls)
    if not params.frozen or "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init: {cls.__name__} must be a frozen dataclass without slots or __post_init__")
    if any(f._field_type is dataclasses._FIELD_INITVAR for f in cls.__dataclass_fields__.values()):  # type: ignore[attr-defined]
        raise TypeError(f"quick_init: {cls.__name__} has an init-only field")
    names: list[str] = []
    signature: list[str] = []
    scope: dict[str, Any] = {"_FACTORY": _FACTORY}
    factories: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only:
            raise TypeError(f"quick_init: {cls.__name__}.{f.name} is not a plain positional field")
        names.append(f.name)
        if f.default is not dataclasses.MISSING:
            scope[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{f.name}"] = f.default_factory
            signature.append(f"{f.name}=_FACTORY")
            factories.append(f"    if {f.name} is _FACTORY:\n        {f.name} = _factory_{f.name}()\n")
        else:
            signature.append(f.name)
    fill = ", ".join(f"{name}={name}" for name in names)
    source = f"def __init__(self, {', '.join(signature)}):\n{''.join(factories)}    self.__dict__.update({fill})\n"
    exec(source, scope)  # noqa: S102 (the text is built from the class's own field names, checked above)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _dataclass_params(cls: type) -> Any:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None:
        raise TypeError(f"quick_init: {cls.__name__} is not a dataclass")
    return params
