"""Canonical JSON: the public RFC 8785 vectors, and every way a received body can be refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from medsync.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, canonical_bytes, parse_canonical, sha256_hex
from medsync.errors import CanonicalError

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "rfc8785-jcs" / "testdata"
LIMIT = 1 << 20


def vector_names() -> list[str]:
    if not (VECTORS / "input").is_dir():
        return ["missing"]
    return sorted(path.stem for path in (VECTORS / "input").glob("*.json"))


def load_vector(name: str) -> tuple[Any, bytes]:
    if not (VECTORS / "input").is_dir():
        pytest.skip(f"RFC 8785 vectors not found at {VECTORS} (they live beside the repository in shared/vectors)")
    parsed = json.loads((VECTORS / "input" / f"{name}.json").read_bytes())
    return parsed, (VECTORS / "output" / f"{name}.json").read_bytes()


def holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(holds_float(item) for item in value)
    if isinstance(value, dict):
        return any(holds_float(item) for item in value.values())
    return False


def refusal(data: bytes, max_bytes: int = LIMIT) -> CanonicalError:
    with pytest.raises(CanonicalError) as caught:
        parse_canonical(data, max_bytes=max_bytes)
    return caught.value


# --- the public vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", vector_names())
def test_library_matches_vector(name: str) -> None:
    parsed, expected = load_vector(name)
    assert rfc8785.dumps(parsed) == expected


@pytest.mark.parametrize("name", vector_names())
def test_our_writer_on_vector(name: str) -> None:
    parsed, expected = load_vector(name)
    if holds_float(parsed):
        # Our documents carry no floats: the library is right (above), and we refuse to write them.
        with pytest.raises(CanonicalError) as written:
            canonical_bytes(parsed)
        assert written.value.code == "body.not_canonical"
    else:
        assert canonical_bytes(parsed) == expected


@pytest.mark.parametrize("name", vector_names())
def test_our_reader_on_vector_output(name: str) -> None:
    _, expected = load_vector(name)
    if holds_float(json.loads(expected)):
        assert refusal(expected).code == "body.float"
    else:
        # Canonical bytes are accepted as they are (56.0 became the integer 56 in "structures").
        assert parse_canonical(expected, max_bytes=LIMIT) == json.loads(expected)


# --- writing --------------------------------------------------------------------------------------------


def test_canonical_bytes_sorts_keys_by_utf16_and_drops_whitespace() -> None:
    assert canonical_bytes({"b": [1, True, None], "a": "x", "\U0001f602": 0, "\ufb33": 0}) == (
        '{"a":"x","b":[1,true,null],"\U0001f602":0,"\ufb33":0}'.encode()
    )


def test_canonical_bytes_accepts_tuples_and_the_integer_bounds() -> None:
    assert canonical_bytes((MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER)) == b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"a": {"b": 1.0}}, "float 1.0 at $.a.b"),
        ([float("nan")], "float nan at $[0]"),
        ({"x": float("inf")}, "float inf at $.x"),
        ([MAX_SAFE_INTEGER + 1], "integer out of range"),
        ([-MAX_SAFE_INTEGER - 1], "integer out of range"),
        (["\ud800"], "lone surrogate in a string at $[0]"),
        ({"\udc00": 1}, "lone surrogate in a key at $"),
        ({1: "a"}, "non-string key int"),
        ({"a": {1, 2}}, "unsupported type set at $.a"),
        ([b"bytes"], "unsupported type bytes"),
    ],
)
def test_canonical_bytes_refuses_what_our_documents_cannot_hold(value: object, named: str) -> None:
    with pytest.raises(CanonicalError) as caught:
        canonical_bytes(value)
    assert caught.value.code == "body.not_canonical"
    assert named in caught.value.message


def test_canonical_bytes_refuses_cycles_as_too_deep() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(CanonicalError) as caught:
        canonical_bytes(loop)
    assert caught.value.code == "body.not_canonical"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_what_we_write_we_read_back(value: Any) -> None:
    data = canonical_bytes(value)
    assert parse_canonical(data, max_bytes=len(data)) == value


def test_sha256_hex() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- reading: every refusal, with its exact code ----------------------------------------------------------


def test_size_is_checked_before_anything_else() -> None:
    assert refusal(b"\xff" * 11, max_bytes=10).code == "body.too_large"
    assert refusal(b"[1] trailing", max_bytes=10).code == "body.too_large"
    assert parse_canonical(b'"123456"', max_bytes=8) == "123456"


@pytest.mark.parametrize("data", [b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"', b'"\xc0\xaf"'])
def test_not_utf8(data: bytes) -> None:
    assert refusal(data).code == "body.not_utf8"


@pytest.mark.parametrize("data", [b"", b"{", b"[1] [2]", b"\xef\xbb\xbf[]", b"{'a':1}", b'{"a"}', b"[1,]"])
def test_not_json(data: bytes) -> None:
    assert refusal(data).code == "body.not_json"


@pytest.mark.parametrize("data", [b'{"a":1,"a":1}', b'{"x":[{"a":1,"b":2,"a":3}]}', b'{"a":1,"\\u0061":2}'])
def test_duplicate_keys(data: bytes) -> None:
    error = refusal(data)
    assert error.code == "body.duplicate_key"
    assert 'duplicate key "a"' in error.message


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b'{"a":{"b":1.5}}', "$.a.b"),
        (b"[1.0]", "$[0]"),
        (b"[-0.0]", "$[0]"),
        (b'{"n":1e3}', "$.n"),
        (b'{"n":1E-7}', "$.n"),
        (b'{"x y":[NaN]}', '$["x y"][0]'),
        (b"[Infinity]", "$[0]"),
        (b"[-Infinity]", "$[0]"),
    ],
)
def test_floats_nan_and_infinity(data: bytes, where: str) -> None:
    error = refusal(data)
    assert error.code == "body.float"
    assert error.message.endswith(f"at {where}")


@pytest.mark.parametrize("data", [b"[9007199254740992]", b"[-9007199254740992]", b'{"a":' + b"9" * 5000 + b"}"])
def test_integers_out_of_range(data: bytes) -> None:
    assert refusal(data).code == "body.integer_range"


def test_integer_bounds_are_accepted() -> None:
    assert parse_canonical(b"[9007199254740991,-9007199254740991]", max_bytes=LIMIT) == [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]


@pytest.mark.parametrize("data", [b'["\\ud800"]', b'["a\\udfffb"]', b'{"\\udc00":1}', b'{"k":{"\\ud83d":true}}', b'["\\ude02\\ud83d"]'])
def test_lone_surrogates(data: bytes) -> None:
    assert refusal(data).code == "body.lone_surrogate"


def test_surrogate_pair_is_not_lone_but_its_escape_is_not_canonical() -> None:
    assert parse_canonical('["\U0001f602"]'.encode(), max_bytes=LIMIT) == ["\U0001f602"]
    assert refusal(b'["\\ud83d\\ude02"]').code == "body.not_canonical"


def test_too_deep() -> None:
    assert refusal(b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2)).code == "body.too_deep"
    assert refusal(b"[" * 100_000 + b"]" * 100_000).code == "body.too_deep"


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',
        b'{"a": 1}',
        b' {"a":1}',
        b'{"a":1}\n',
        b"[-0]",
        b'["\\u0041"]',
        b'["\\/"]',
        b'["\\u001F"]',
        b'["\x7f\\u007f"]',
    ],
)
def test_valid_json_that_is_not_canonical(data: bytes) -> None:
    error = refusal(data)
    assert error.code == "body.not_canonical"
    assert "first difference at byte" in error.message


def test_error_messages_stay_ascii_and_short() -> None:
    error = refusal(b'{"' + b"k" * 1000 + b'":1,"' + b"k" * 1000 + b'":2}')
    assert error.code == "body.duplicate_key"
    assert len(error.message) < 120
    assert refusal(b'{"\\ud800":1,"\\ud800":2}').message.isascii()
