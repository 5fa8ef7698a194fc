"""Golden vectors of the canonical rendering (docs/state.md#the-canonical-rendering).

Every state's hash is BLAKE2b-128 over the canonical JSON of the public instance. Each vector
is (public instance as JSON text, its canonical rendering, the hash), written down once and
never computed here: the installed orjson, the Python path and the C path must all reproduce
it. An orjson release that wrote something else would otherwise move every hash silently
(and every key would see one spurious change); here it fails a test instead.
"""

from __future__ import annotations

import hashlib
import zlib

import orjson
import pytest

from processor import native
from processor.canonical import digest, fingerprints, rendering
from processor.config import Settings
from processor.records import InputRecord
from processor.task import Task, new_task

# (name, public instance as JSON text, canonical rendering, BLAKE2b-128 of the rendering)
VECTORS = [
    ("empty", b"{}", b"{}", "2afb9b83f9314e5d029766197f539792"),
    (
        "names sorted by code point",
        b'{"b":1,"a":2,"A":3,"_":4,"aa":5,"a b":6}',
        b'{"A":3,"_":4,"a":2,"a b":6,"aa":5,"b":1}',
        "4257d8c285c3bd555bfd2e115f8af1bf",
    ),
    (
        "non-ASCII names: code point order, which is UTF-8 order, not UTF-16's",
        '{"z":1,"é":2,"ü":3,"€":4,"😀":5,"":6,"\\uffff":7,"中":8}'.encode(),
        '{"":6,"z":1,"é":2,"ü":3,"€":4,"中":8,"\uffff":7,"😀":5}'.encode(),
        "f7ecb3fce82159e2665459bf1dedd2ed",
    ),
    (
        "nested objects sorted, arrays kept in order",
        b'{"o":{"y":[3,1,2],"x":{"d":null,"c":true}},"l":[{"b":1,"a":0},[],{}]}',
        b'{"l":[{"a":0,"b":1},[],{}],"o":{"x":{"c":true,"d":null},"y":[3,1,2]}}',
        "8497100d765abf8e10c914d2246a8a58",
    ),
    (
        "escapes by name",
        b'{"s":"quote \\" backslash \\\\ slash / tab \\t nl \\n cr \\r ff \\f bs \\b"}',
        b'{"s":"quote \\" backslash \\\\ slash / tab \\t nl \\n cr \\r ff \\f bs \\b"}',
        "16623de748f9210e81f156ef07a58f11",
    ),
    (
        "other controls as lower-case \\u00XX, everything else as itself",
        '{"c":"\\u0000\\u0001\\u001f\\u007f\\u0080 é €😀 \\u2028\\u2029"}'.encode(),
        '{"c":"\\u0000\\u0001\\u001f\x7f\x80 é €😀 \u2028\u2029"}'.encode(),
        "862440dbf72b179cf11c945b04b5ea69",
    ),
    (
        "escaped input written plainly",
        b'{"u":"\\u0041\\u00e9\\ud83d\\ude00\\/"}',
        '{"u":"Aé😀/"}'.encode(),
        "065860cd1b1d967473dd7d85b446f96c",
    ),
    (
        "integers in plain decimal, -0 as 0",
        b'{"i":[0,-0,1,-1,9007199254740993,18446744073709551615,-9223372036854775808]}',
        b'{"i":[0,0,1,-1,9007199254740993,18446744073709551615,-9223372036854775808]}',
        "71d5d0e01c3180d09d6edae5921bf814",
    ),
    (
        "floats as their shortest round-trip digits",
        b'{"f":[1.0,0.1,-0.0,1e16,1.5e-7,2.5E+20,100.0,123456.789,1e300,5e-324]}',
        b'{"f":[1.0,0.1,-0.0,1e+16,1.5e-7,2.5e+20,100.0,123456.789,1e+300,5e-324]}',
        "e17daf7462d23561cd3846b0a200cf19",
    ),
    (
        "integers beyond 64 bits read as doubles; where exponents start",
        b'{"big":[18446744073709551616,-9223372036854775809],'
        b'"f":[1e-5,1e-6,1e-7,1000000000000000.0]}',
        b'{"big":[1.8446744073709552e+19,-9.223372036854776e+18],'
        b'"f":[0.00001,1e-6,1e-7,1000000000000000.0]}',
        "1b522d4d77ab572f2635dc108929c3ec",
    ),
    (
        "literals and empty containers",
        b'{"t":true,"f":false,"n":null,"e":"","a":[],"o":{}}',
        b'{"a":[],"e":"","f":false,"n":null,"o":{},"t":true}',
        "6d6b40366941bda3a2ba063f88765d4e",
    ),
    (
        "no whitespace",
        b' { "w" : [ 1 , 2 ] ,\n\t"v" : { } } ',
        b'{"v":{},"w":[1,2]}',
        "951383e737b10096057c2f02065f08b3",
    ),
]
IDS = [v[0] for v in VECTORS]
# What the C path reads itself; floats and integers beyond 18 digits it hands over.
_TAKEN_BY_C = {"empty", "names sorted by code point", "nested objects sorted, arrays kept in order"}
_TAKEN_BY_C |= {
    "escapes by name",
    "other controls as lower-case \\u00XX, everything else as itself",
}
_TAKEN_BY_C |= {"escaped input written plainly", "literals and empty containers", "no whitespace"}


@pytest.mark.parametrize(("name", "text", "canonical", "hashed"), VECTORS, ids=IDS)
def test_the_installed_orjson_writes_the_canonical_rendering(
    name: str, text: bytes, canonical: bytes, hashed: str
) -> None:
    assert orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS) == canonical
    assert hashlib.blake2b(canonical, digest_size=16).hexdigest() == hashed


@pytest.mark.parametrize(("name", "text", "canonical", "hashed"), VECTORS, ids=IDS)
def test_the_python_path_renders_and_hashes_the_vectors(
    name: str, text: bytes, canonical: bytes, hashed: str
) -> None:
    public = orjson.loads(text)
    assert rendering(public) == canonical
    assert digest(canonical).hex() == hashed
    assert _state_hash(text, native=False) == hashed


@pytest.mark.skipif(not native.AVAILABLE, reason="the C path is not built here")
@pytest.mark.parametrize(("name", "text", "canonical", "hashed"), VECTORS, ids=IDS)
def test_the_c_path_hashes_the_vectors_or_hands_them_over(
    name: str, text: bytes, canonical: bytes, hashed: str
) -> None:
    task = new_task(_SETTINGS)
    assert _state_hash(text, native=True, task=task) == hashed
    assert (task.core.native_records == 1) == (name in _TAKEN_BY_C)


def test_the_fingerprints_are_crc32_of_each_members_rendering() -> None:
    """The per-attribute fingerprints: CRC-32 (zlib's) of each top-level member's value,
    rendered canonically, in the instance's order."""
    names, digests = fingerprints({"b": {"y": 1, "x": [2]}, "a": "é"})
    assert names == "b\0a"
    assert digests.hex() == _crc(b'{"x":[2],"y":1}') + _crc('"é"'.encode())


def _crc(data: bytes) -> str:
    return zlib.crc32(data).to_bytes(4, "big").hex()


# `id` private: the public instance is exactly the vector.
_SETTINGS = Settings(instance_id="t", private_fields=["id"])


def _state_hash(text: bytes, *, native: bool, task: Task | None = None) -> str:
    """The hash a new key's state holds after an upsert whose public instance is `text`."""
    run = task if task is not None else new_task(_SETTINGS, native=native)
    members = text.strip()[1:].strip()  # after the vector's opening brace
    instance = b'{"id":"k"' + (b"}" if members == b"}" else b"," + members)
    value = b'{"entityType":"service","instance":' + instance + b"}"
    result = run.process(InputRecord("in", 0, 0, 1_700_000_000_000, b"k", value, []))
    assert result.outcome == "emit", result
    state = run.state(0, "k")
    assert state is not None
    return state.hash.hex()
