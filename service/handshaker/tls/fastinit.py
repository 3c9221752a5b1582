"""A faster __init__ for the frozen, slotted dataclasses made on every handshake.

A frozen dataclass's generated __init__ sets each field through
object.__setattr__ (a global lookup, an attribute lookup and a generic setattr
per field); a HandshakeResult has twenty fields, and two are made per
handshake. The __init__ made here has the same signature and defaults but
stores each field through its slot's own descriptor, about twice as fast. The
class stays frozen (its __setattr__ is untouched), and eq, repr, hash and
dataclasses.replace() are the dataclass's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any, TypeVar

_T = TypeVar("_T")


def _unsupported(cls: type, field: dataclasses.Field[Any]) -> bool:
    return (
        not field.init
        or field.kw_only is True
        or field.default_factory is not dataclasses.MISSING
        or not isinstance(cls.__dict__.get(field.name), MemberDescriptorType | GetSetDescriptorType)
    )


def fast_frozen_init(cls: type[_T]) -> type[_T]:
    """Replace a frozen, slotted dataclass's __init__ (called after the class statement:
    as a decorator it would keep mypyc from compiling the class).

    A class the compiled engine made (handshaker/tls/compiled.py) keeps its fields in
    native slots, each with a getset descriptor instead of a member one; the same
    __init__ sets them through those.
    """
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    slotted = "__slots__" in cls.__dict__ or "__mypyc_attrs__" in cls.__dict__
    if not (params.frozen and slotted) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: only frozen, slotted dataclasses without __post_init__")
    namespace: dict[str, Any] = {}
    arguments: list[str] = []
    body: list[str] = []
    for index, field in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if _unsupported(cls, field):
            raise TypeError(f"{cls.__name__}.{field.name}: a field fast_frozen_init cannot set")
        namespace[f"_set_{index}"] = cls.__dict__[field.name].__set__
        if field.default is dataclasses.MISSING:
            arguments.append(field.name)
        else:
            namespace[f"_default_{index}"] = field.default
            arguments.append(f"{field.name}=_default_{index}")
        body.append(f"    _set_{index}(self, {field.name})")
    source = f"def __init__(self, {', '.join(arguments)}):\n" + "\n".join(body) + "\n"
    # Generated source, as dataclasses itself does; only field names (identifiers) go in.
    exec(source, namespace)  # noqa: S102
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
