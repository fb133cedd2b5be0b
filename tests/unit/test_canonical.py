"""Canonical JSON: the public RFC 8785 vectors, and every way a received body can be refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medsync.canonical import MAX_DEPTH, MAX_SAFE_INTEGER, _fast, _parse_strictly, canonical_bytes, parse_canonical, sha256_hex
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


# --- the fast writer and reader against the reference -----------------------------------------------------
# canonical_bytes and parse_canonical take a fast way (msgspec's writer and parser) for what our documents
# hold, and the reference way (the `rfc8785` package, the strict reader) for the rest. Both must give the
# same bytes, the same values and the same refusals.

# Characters where JSON writers differ: controls (short and \u escapes), quote, backslash, DEL, the line
# and paragraph separators, the top of the BMP (above the surrogates) and beyond it (UTF-16 key order).
tricky = st.sampled_from(list('"\\/\x00\x08\t\n\x0c\r\x1f\x7f\u2028\u2029\ufb33\uffff\U0001f602\U00010000éы'))
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]) | tricky, max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | texts,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children) | st.dictionaries(texts, children, max_size=6),
    max_leaves=40,
)


def keys_beyond_the_bmp(value: Any) -> bool:
    if isinstance(value, dict):
        return any(max(key, default="") > "\uffff" or keys_beyond_the_bmp(item) for key, item in value.items())
    return isinstance(value, list | tuple) and any(keys_beyond_the_bmp(item) for item in value)


@settings(max_examples=500)
@given(documents)
def test_our_writer_is_rfc8785_byte_for_byte(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonical_bytes(value) == expected
    # msgspec wrote it, unless a key beyond the BMP sent it the reference way.
    assert _fast(value) == (None if keys_beyond_the_bmp(value) else expected)


@given(st.dictionaries(st.sampled_from(["a", "\ufb33", "\uffff", "\U0001f602", "\U00010000", "z\U0001f602", "z\ufb33"]), st.integers(0, 9)))
def test_keys_beyond_the_bmp_keep_utf16_order(value: dict[str, int]) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@given(documents)
def test_our_reader_takes_what_the_reference_takes(value: Any) -> None:
    data = rfc8785.dumps(value)
    assert parse_canonical(data, max_bytes=len(data)) == _parse_strictly(data) == json.loads(data)


def _outcome(data: bytes) -> object:
    try:
        return ("value", parse_canonical(data, max_bytes=LIMIT))
    except CanonicalError as exc:
        return ("refused", exc.code, exc.message)


def _reference(data: bytes) -> object:
    try:
        return ("value", _parse_strictly(data))
    except CanonicalError as exc:
        return ("refused", exc.code, exc.message)


@settings(max_examples=300)
@given(documents, st.data())
def test_our_reader_refuses_what_the_reference_refuses_with_the_same_words(value: Any, data: st.DataObject) -> None:
    """Bytes near canonical ones (one byte changed, inserted or removed, or another JSON writer's output)."""
    canonical = rfc8785.dumps(value)
    variants = [
        json.dumps(value).encode(),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
    ]
    if canonical:
        at = data.draw(st.integers(0, len(canonical) - 1))
        byte = data.draw(st.integers(0, 255))
        variants += [
            canonical[:at] + bytes([byte]) + canonical[at + 1 :],
            canonical[:at] + bytes([byte]) + canonical[at:],
            canonical[:at] + canonical[at + 1 :],
        ]
    for variant in variants:
        assert _outcome(variant) == _reference(variant)


@pytest.mark.parametrize("name", vector_names())
def test_the_fast_writer_on_vector(name: str) -> None:
    parsed, expected = load_vector(name)
    fast = _fast(parsed)
    assert fast is None or fast == expected
    if not holds_float(parsed) and all(c <= "\uffff" for c in json.dumps(parsed, ensure_ascii=False)):
        assert fast == expected, "the fast way covers every float-free vector without keys beyond the BMP"
