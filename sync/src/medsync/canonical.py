"""RFC 8785 canonical JSON for everything we sign: one way to write it and one strict way to read it back.

Our documents hold only str, int (within +-(2**53-1)), bool, None, lists and objects with str keys. A node
accepts received bytes only when they are exactly the canonical form of what they parse to, so two nodes
can never read one signed body in two different ways.

Refusal codes (every refusal is a `CanonicalError`):
- `body.too_large`: more bytes than the caller allows; checked before anything is parsed.
- `body.not_utf8`: the bytes are not valid UTF-8.
- `body.not_json`: not JSON at all (syntax error, trailing data, byte order mark).
- `body.duplicate_key`: an object names the same key twice.
- `body.float`: a number with a fraction or exponent, or NaN / Infinity.
- `body.integer_range`: an integer outside +-(2**53-1).
- `body.lone_surrogate`: a string or key holding a lone UTF-16 surrogate.
- `body.too_deep`: nesting deeper than `MAX_DEPTH`.
- `body.not_canonical`: valid JSON that is not byte for byte its RFC 8785 form (whitespace, key order,
  escapes, `-0`, ...). `canonical_bytes` uses this one code for every value it cannot write, with a
  message naming the problem: there it is the sender's bug, not a received body.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
import rfc8785

from medsync.errors import CanonicalError

MAX_SAFE_INTEGER = 2**53 - 1
# Far deeper than any manifest or trust file, and far below Python's recursion limit.
MAX_DEPTH = 64

TOO_LARGE = "body.too_large"
NOT_UTF8 = "body.not_utf8"
NOT_JSON = "body.not_json"
DUPLICATE_KEY = "body.duplicate_key"
FLOAT = "body.float"
INTEGER_RANGE = "body.integer_range"
LONE_SURROGATE = "body.lone_surrogate"
TOO_DEEP = "body.too_deep"
NOT_CANONICAL = "body.not_canonical"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# 2**53-1 has 16 digits: anything longer is out of range, and converting it could hit Python's
# int-from-string digit limit (a ValueError deep inside json.loads).
_MAX_INT_DIGITS = len(str(MAX_SAFE_INTEGER))


class _Number:
    """A JSON number we refuse, kept as its text so the walk can report where it is."""

    def __init__(self, text: str, code: str) -> None:
        self.text = text
        self.code = code


# For the values our documents hold (str, int, bool, None, lists and str-keyed objects; no floats), RFC 8785
# is what msgspec writes with sorted keys: the same escapes (short ones, \u00xx for other controls, nothing
# else), no whitespace, UTF-8. Only the key order differs, for keys beyond the Basic Multilingual Plane
# (msgspec sorts by code point, RFC 8785 by UTF-16 unit), so `_fast` takes only values without such keys.
# The pure-Python `rfc8785` package stays the reference and writes everything else; tests check the two
# byte for byte (tests/unit/test_canonical.py). Every manifest, document hash and received body goes
# through here on both sides, and msgspec is about twenty times faster.


def canonical_bytes(obj: object) -> bytes:
    """The RFC 8785 bytes of `obj`; refuses (code `body.not_canonical`) what our documents may not hold."""
    fast = _fast(obj)
    if fast is not None:
        return fast
    try:
        _check(obj, "$", 0)
    except CanonicalError as exc:
        raise CanonicalError(exc.message, code=NOT_CANONICAL) from None
    return rfc8785.dumps(obj)  # type: ignore[arg-type]


def parse_canonical(data: bytes, *, max_bytes: int) -> Any:
    """Parse bytes a peer sent, accepting them only if they are exactly our canonical JSON."""
    if len(data) > max_bytes:
        raise CanonicalError(f"{len(data)} bytes, more than the limit of {max_bytes}", code=TOO_LARGE)
    # The fast way accepts only bytes that are exactly the canonical form of what msgspec parsed (so a
    # duplicate key, a float, whitespace, an escape... never passes); anything else is read again the
    # strict way below, which names the refusal.
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: not UTF-8
        pass
    else:
        if _fast(value) == data:
            return value
    return _parse_strictly(data)


def _parse_strictly(data: bytes) -> Any:
    """The reference reader: every check in the order of the module's list of refusals, with the path of the
    offending value; the standard library's parser with hooks, and `rfc8785` for the exact form."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CanonicalError(f"not UTF-8 at byte {exc.start}", code=NOT_UTF8) from None
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_float=_float, parse_constant=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not JSON: {exc.msg} at char {exc.pos}", code=NOT_JSON) from None
    except RecursionError:
        raise CanonicalError(f"nested deeper than {MAX_DEPTH}", code=TOO_DEEP) from None
    _check(value, "$", 0)
    _require_exact(data, rfc8785.dumps(value))
    return value


def _fast(obj: object) -> bytes | None:
    """The canonical bytes from msgspec, or None when `obj` needs the careful way (something our
    documents may not hold, a key beyond the BMP, a lone surrogate): that way writes it or names the refusal."""
    if not _plain(obj, 0):
        return None
    try:
        return msgspec.json.encode(obj, order="sorted")
    except UnicodeEncodeError:  # a lone surrogate somewhere
        return None


_SCALARS = frozenset({str, bool, type(None)})


def _plain(value: object, depth: int) -> bool:
    """Only exact str, int (in range), bool, None, list, tuple and dict with BMP-only str keys, nested at
    most MAX_DEPTH deep. Exact types only: a subclass may print itself differently. (No call for a str, bool
    or None inside a container, no generator for an object's members: this walk is most of the cost.)"""
    kind = type(value)
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[operator]
    if kind is not dict and kind is not list and kind is not tuple:
        return kind in _SCALARS
    if depth >= MAX_DEPTH:
        return False
    if kind is not dict:
        return all(type(item) in _SCALARS or _plain(item, depth + 1) for item in value)  # type: ignore[attr-defined]
    for key, item in value.items():  # type: ignore[attr-defined]
        odd_key = type(key) is not str or not (key.isascii() or max(key) <= "\uffff")
        if odd_key or (type(item) not in _SCALARS and not _plain(item, depth + 1)):
            return False
    return True


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CanonicalError(f"duplicate key {_quote(key)}", code=DUPLICATE_KEY)
            seen.add(key)
    return result


def _float(text: str) -> _Number:
    # Also receives NaN, Infinity and -Infinity (parse_constant).
    return _Number(text, FLOAT)


def _int(text: str) -> int | _Number:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Number(text, INTEGER_RANGE)
    return int(text)


def _check(value: object, path: str, depth: int) -> None:
    """Refuse, naming the path, the first value that is not one of our JSON types."""
    if depth > MAX_DEPTH:
        raise CanonicalError(f"nested deeper than {MAX_DEPTH}", code=TOO_DEEP)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalError(f"integer out of range +-(2**53-1) at {path}", code=INTEGER_RANGE)
    elif isinstance(value, str):
        _check_string(value, f"a string at {path}")
    elif isinstance(value, float):
        raise CanonicalError(f"float {value!r} at {path}", code=FLOAT)
    elif isinstance(value, _Number):
        what = "integer out of range +-(2**53-1)" if value.code == INTEGER_RANGE else f"float {value.text[:32]}"
        raise CanonicalError(f"{what} at {path}", code=value.code)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"non-string key {type(key).__name__} at {path}", code=NOT_CANONICAL)
            _check_string(key, f"a key at {path}")
            _check(item, _child(path, key), depth + 1)
    else:
        raise CanonicalError(f"unsupported type {type(value).__name__} at {path}", code=NOT_CANONICAL)


def _check_string(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalError(f"lone surrogate in {where}", code=LONE_SURROGATE) from None


def _require_exact(data: bytes, canonical: bytes) -> None:
    if data == canonical:
        return
    offset = next((i for i, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b), min(len(data), len(canonical)))
    raise CanonicalError(f"not the RFC 8785 canonical form (first difference at byte {offset})", code=NOT_CANONICAL)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{_quote(key)}]"


def _quote(key: str) -> str:
    # ASCII-only so a message can never carry a lone surrogate into a log; long keys are cut.
    shown = key if len(key) <= 64 else key[:64] + "..."
    return json.dumps(shown, ensure_ascii=True)
