"""Guards for what arrives from the wire or a caller: ids, size and nesting bounds, short
error texts, and lone surrogates (which UTF-8 cannot hold). :mod:`byway.protocol` applies
them; everything here raises :class:`~byway.errors.ProtocolError` naming the field."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from byway.errors import ProtocolError
from byway.limits import MAX_ID_LENGTH

__all__ = [
    "CONTROL",
    "SURROGATE",
    "as_bytes",
    "brief",
    "check_id",
    "check_wire_id",
    "decode_bounded",
    "depth",
    "scrub",
    "shown",
]

SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_id(field: str, value: object, *, forbid_braces: bool = False) -> str:
    """``value`` if it is a usable id: a string of 1 to 256 characters with no control
    characters (and no braces with ``forbid_braces``), else :class:`ProtocolError` naming
    ``field``."""
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{field}: expected a non-empty string, got {shown(value)}")
    check_wire_id(field, value, forbid_braces)
    return value


def check_wire_id(field: str, value: str, forbid_braces: bool) -> None:
    if not value:
        return
    if len(value) > MAX_ID_LENGTH:
        raise ProtocolError(f"{field}: expected at most {MAX_ID_LENGTH} characters, "
                            f"got {len(value)}")  # fmt: skip
    if CONTROL.search(value):
        raise ProtocolError(f"{field}: must not contain control characters, got {shown(value)}")
    if forbid_braces and ("{" in value or "}" in value):
        raise ProtocolError(
            f"{field}: must not contain braces (key schema v2 puts ids in hash tags), "
            f"got {shown(value)}"
        )
    if not value.strip():
        raise ProtocolError(f"{field}: must not be blank")


def shown(value: object, limit: int = 80) -> str:
    """A bounded, escaped rendering of a wire value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def brief(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."


def as_bytes(data: object, max_bytes: int, what: str) -> bytes:
    if isinstance(data, str):
        try:
            data = data.encode()
        except UnicodeEncodeError as exc:
            raise ProtocolError(f"invalid {what}: not UTF-8 ({brief(exc, 120)})") from None
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ProtocolError(f"invalid {what}: expected JSON bytes, got {type(data).__name__}")
    if not data:
        raise ProtocolError(f"invalid {what}: the entry has no `data` field (or it is empty)")
    if len(data) > max_bytes:
        raise ProtocolError(
            f"invalid {what}: {len(data)} bytes is over the limit of {max_bytes} "
            "(BYWAY_MAX_COMMAND_BYTES)"
        )
    return data


def decode_bounded(
    decoder: msgspec.json.Decoder[Any], raw: bytes, max_depth: int, what: str
) -> Any:
    # fewer brackets than the limit: it cannot nest deeper (one scan in C)
    shallow = raw.count(b"[") + raw.count(b"{") <= max_depth
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid {what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"invalid {what}: not JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"invalid {what}: not UTF-8 (byte {raw[exc.start]:#04x} at {exc.start})"
        ) from None
    except RecursionError:
        raise ProtocolError(f"invalid {what}: nested deeper than {max_depth} levels") from None
    if not shallow and depth(value) > max_depth:
        raise ProtocolError(f"invalid {what}: nested deeper than {max_depth} levels")
    return value


def depth(value: Any) -> int:
    """How deep arrays, objects and structs nest in ``value`` (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, msgspec.Struct):
            children: Any = [getattr(item, f) for f in item.__struct_fields__]
        elif isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def scrub(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value
