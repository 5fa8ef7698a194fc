"""Loads the sanitizer build of the C path (`make sanitize-build`) as `processor._native`.

The normal install keeps its own build in processor/; the sanitizer build lives in
build/sanitize/ and takes its place, before anything imports it, when TMF_NATIVE_BUILD names
that directory. The fuzz target imports this module first; `make sanitize` loads it as a
pytest plugin (`-p tests.fuzz.sanitized`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import processor


def use_build(directory: Path) -> None:
    (path,) = directory.glob("_native*.so")
    spec = importlib.util.spec_from_file_location("processor._native", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no extension module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["processor._native"] = module
    processor._native = module  # type: ignore[attr-defined]


_BUILD = os.environ.get("TMF_NATIVE_BUILD")
if _BUILD:
    if "processor.native" in sys.modules:
        raise RuntimeError("the sanitizer build must be loaded before processor.native")
    use_build(Path(_BUILD))
