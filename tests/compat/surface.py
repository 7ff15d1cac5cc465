"""Print a package's public surface as JSON: every name in ``__all__`` with its kind, its
parameters and, for classes, its public methods' parameters and enum members.

    python surface.py by_framework     # in the by-framework 3.12 venv
    python surface.py byway            # in Byway's venv

Run by ``tests/compat/test_surface.py`` on both sides; it imports nothing but the package
named and the standard library, so it runs in either interpreter.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import re
import sys
from typing import Any

#: Methods every object has; a class's own ``__init__`` is listed as ``__init__``.
_SKIP = set(dir(object)) | {"__class_getitem__", "__init_subclass__"}


def _params(obj: Any) -> dict[str, Any] | None:
    """``{"names": [...], "var_keyword": bool, "var_positional": bool}``, or None when
    the object has no signature Python can read (a builtin, a C extension type)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    kinds = {p.kind for p in signature.parameters.values()}
    return {
        "names": [
            p.name
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in ("self", "cls")
        ],
        "var_keyword": inspect.Parameter.VAR_KEYWORD in kinds,
        "var_positional": inspect.Parameter.VAR_POSITIONAL in kinds,
    }


def _own_methods(cls: type, package: str) -> dict[str, Any]:
    """Public callables defined by ``cls`` or a base class from ``package``."""
    methods: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(package):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in _SKIP:
                continue
            raw = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            if inspect.isfunction(raw):
                methods[name] = _params(getattr(cls, name))
            elif isinstance(value, property):
                methods[name] = "property"
    return methods


def _fields(cls: type) -> list[str]:
    """Attribute names instances carry: dataclass fields, msgspec struct fields,
    annotations."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        annotations = vars(klass).get("__annotations__", {})
        struct_fields = vars(klass).get("__struct_fields__", ())
        for group in (annotations, struct_fields):
            if isinstance(group, (dict, tuple)):
                names += [n for n in group if not n.startswith("_")]
    return list(dict.fromkeys(names))


def _attributes(cls: type) -> list[str]:
    """Public names an instance has: the class's (methods, slots, class attributes) and
    those its source assigns as ``self.<name>``."""
    names = {n for n in dir(cls) if not n.startswith("_")}
    for klass in cls.__mro__:
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        names |= {n for n in re.findall(r"self\.([a-z]\w*)\s*(?::|=(?!=))", source)}
    return sorted(names)


def describe(package: str) -> dict[str, Any]:
    module = importlib.import_module(package)
    surface: dict[str, Any] = {}
    public = {getattr(module, n, None): n for n in getattr(module, "__all__", ())}
    for name in sorted(getattr(module, "__all__", ())):
        obj = getattr(module, name, None)
        if inspect.isclass(obj) and issubclass(obj, enum.Enum):
            surface[name] = {"kind": "enum", "members": [m.name for m in obj]}
        elif inspect.isclass(obj):
            surface[name] = {
                "kind": "class",
                "init": _params(obj),
                "methods": _own_methods(obj, package),
                "fields": _fields(obj),
                "attributes": _attributes(obj),
                # public classes of the package this one derives from
                "bases": [public[b] for b in obj.__mro__[1:] if b in public],
            }
        elif callable(obj):
            surface[name] = {"kind": "function", "params": _params(obj)}
        else:
            surface[name] = {"kind": "value"}
    return surface


if __name__ == "__main__":
    json.dump(describe(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
