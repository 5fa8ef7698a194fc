"""The public view of an instance, its canonical rendering and the hashes decide compares."""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson

_SORT = orjson.OPT_SORT_KEYS

# A compiled private-field tree: name -> None (drop the member) or a subtree (descend).
PrivateTree = dict[str, "PrivateTree | None"]


def compile_private(paths: list[str]) -> PrivateTree:
    tree: PrivateTree = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = None
                break
            child = node.get(part, {})
            if child is None:  # a shorter path already drops the whole member
                break
            node[part] = child
            node = child
    return tree


def strip_private(instance: dict[str, Any], tree: PrivateTree) -> dict[str, Any]:
    """A copy of `instance` without the private members; shares untouched subtrees."""
    if not tree or tree.keys().isdisjoint(instance.keys()):
        return instance
    return _strip_dict(instance, tree)


def _strip_dict(obj: dict[str, Any], tree: PrivateTree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in tree:
            out[key] = value
            continue
        sub = tree[key]
        if sub is None:
            continue
        out[key] = _strip_value(value, sub)
    return out


def _strip_value(value: Any, tree: PrivateTree) -> Any:
    # A path through an array applies to each element (docs/design.md#deciding).
    if isinstance(value, dict):
        return _strip_dict(value, tree)
    if isinstance(value, list):
        return [_strip_value(item, tree) for item in value]
    return value


def rendering(public: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return orjson.dumps(public, option=_SORT)


def digest(rendered: bytes) -> bytes:
    """BLAKE2b-128 of the rendering: equal means nothing public changed."""
    return blake2b(rendered, digest_size=16).digest()


def fingerprints(public: dict[str, Any]) -> tuple[str, bytes]:
    """Per top-level member a CRC-32 of its canonical JSON, to tell which attributes changed.

    Returns the NUL-joined names and the packed big-endian fingerprints, compact enough to
    keep per key in memory. The whole-instance BLAKE2b guards the CRCs: when the digest
    says "changed" but no fingerprint differs, decide treats every attribute as changed.
    """
    crc = zlib.crc32
    dumps = orjson.dumps
    values = [crc(dumps(v, option=_SORT)) for v in public.values()]
    return "\0".join(public), _packer(len(values)).pack(*values)


@lru_cache(maxsize=256)
def _packer(count: int) -> struct.Struct:
    return struct.Struct(f">{count}I")


def attribute_names(names: str, digests: bytes) -> list[str]:
    """The names `fingerprints` joined. "" is no name, or one empty name when a fingerprint
    says there is one; a name with a NUL in it comes back in pieces (their count then differs
    from the fingerprints')."""
    if not names:
        return [""] if digests else []
    return names.split("\0")


def _unpack(names: str, digests: bytes) -> dict[str, int] | None:
    keys = attribute_names(names, digests)
    if len(keys) * 4 != len(digests):
        return None  # a NUL inside a name: the pair cannot be split apart
    return dict(zip(keys, _packer(len(keys)).unpack(digests), strict=True))


def changed_attributes(
    old_names: str, old_digests: bytes, new_names: str, new_digests: bytes
) -> tuple[set[str], set[str]] | None:
    """(changed, removed) top-level names, or None when the fingerprints are unusable."""
    if old_names == new_names and len(old_digests) == len(new_digests):
        # Same members in the same order (the common case): XOR finds the differing CRCs
        # without unpacking them.
        diff = int.from_bytes(old_digests, "big") ^ int.from_bytes(new_digests, "big")
        keys = attribute_names(new_names, new_digests)
        count = len(keys)
        if count * 4 != len(new_digests):
            return None
        changed: set[str] = set()
        while diff:
            chunk = (diff.bit_length() - 1) >> 5  # counted from the last member
            changed.add(keys[count - 1 - chunk])
            diff &= ~(0xFFFFFFFF << (chunk << 5))
        return changed, set()
    old = _unpack(old_names, old_digests)
    new = _unpack(new_names, new_digests)
    if old is None or new is None:
        return None
    removed = set(old.keys() - new.keys())
    changed = {k for k, v in new.items() if old.get(k) != v} | removed
    return changed, removed
