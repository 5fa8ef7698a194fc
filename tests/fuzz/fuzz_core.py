#!/usr/bin/env python3
"""The fuzz target: `make fuzz SECONDS=N` (docs/native.md#the-fuzzer).

Coverage-guided (atheris, on libFuzzer) over the sanitizer build of the C path: C coverage
from its instrumentation, Python coverage of the core modules from atheris's. Every input is
a settings case and a record sequence (tests/fuzz/harness.py); a difference between the two
paths, a raise from either, or a sanitizer report is a crash, written to the artifact
directory for `tests/fuzz/found/`.
"""

from __future__ import annotations

import sys

import atheris

import tests.fuzz.sanitized  # noqa: F401  (first: the sanitizer build replaces processor._native)

with atheris.instrument_imports(
    include=[
        "processor.records",
        "processor.canonical",
        "processor.decide",
        "processor.render",
        "processor.core",
        "processor.instance_check",
        "processor.state",
    ]
):
    from tests.fuzz import harness


def test_one_input(data: bytes) -> None:
    harness.check(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
