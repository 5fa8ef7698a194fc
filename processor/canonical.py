"""The public view of an instance, its canonical rendering and the hashes decide compares."""

from __future__ import annotations

import struct
import zlib
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
    # A path through an array applies to each element (DESIGN §3).
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
    """Per top-level member a 64-bit fingerprint, to tell which attributes changed.

    Returns the NUL-joined names and the packed big-endian fingerprints, compact enough to
    keep per key in memory. CRC-32 plus length is cheap, and the whole-instance BLAKE2b
    guards it: when the digest says "changed" but no fingerprint differs, decide treats
    every attribute as changed.
    """
    values = [
        (len(piece) << 32) | zlib.crc32(piece)
        for piece in [orjson.dumps(v, option=_SORT) for v in public.values()]
    ]
    return "\0".join(public), struct.pack(f">{len(values)}Q", *values)


def unpack_fingerprints(names: str, digests: bytes) -> dict[str, int] | None:
    """The name -> fingerprint map, or None if the pair is inconsistent (NUL in a name)."""
    count = len(digests) // 8
    keys = names.split("\0") if names else []
    if len(keys) != count:
        return None
    return dict(zip(keys, struct.unpack(f">{count}Q", digests), strict=True))
