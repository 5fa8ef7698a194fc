"""The C path's shape against its limits: no function over MAX_LINES lines, no stack frame
over MAX_FRAME bytes (docs/native.md#the-stages).

    python scripts/native_shape.py OBJ_DIR

Frames come from the `.su` files in OBJ_DIR, written by the optimised build with
-fstack-usage (`make native-check`), so they are the frames that run, inlining included; a
frame whose size depends on the input (`dynamic` without `bounded`) fails too. Lengths come
from the sources, every function counted whether or not the compiler inlined it: from the
line its definition starts (at the first column, with a parenthesis) to its lone `}`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_LINES = 150
MAX_FRAME = 8 * 1024
SOURCES = Path(__file__).resolve().parents[1] / "processor" / "native"
_FRAME = re.compile(r"^[^:]+:\d+:\d+:(?P<function>\S+)\s+(?P<size>\d+)\s+(?P<kind>\S+)")
_DEFINITION = re.compile(r"^[A-Za-z_][\w \*]*\b(?P<name>\w+)\(")


def lengths(source: Path) -> dict[str, int]:
    """Every function defined in a source file: its name and its number of lines."""
    lines = source.read_text(encoding="utf-8").splitlines()
    found: dict[str, int] = {}
    start: tuple[str, int] | None = None
    for number, line in enumerate(lines, 1):
        if start is None:
            match = _DEFINITION.match(line)
            if match and not line.rstrip().endswith(";"):
                start = (match["name"], number)
        elif line == "}":
            found[f"{source.name}:{start[0]}"] = number - start[1] + 1
            start = None
        elif line.endswith(";") and not line.startswith((" ", "\t")):
            start = None  # a declaration spread over lines, not a definition
    return found


def frames(objects: Path) -> list[tuple[str, int, str]]:
    out = []
    for su in sorted(objects.rglob("*.su")):
        for line in su.read_text(encoding="utf-8").splitlines():
            match = _FRAME.match(line)
            if match:
                name = f"{su.name.split('.')[0]}.c:{match['function']}"
                out.append((name, int(match["size"]), match["kind"]))
    return out


def main(objects: Path) -> int:
    sizes = {
        name: n for source in sorted(SOURCES.glob("*.c")) for name, n in lengths(source).items()
    }
    stack = frames(objects)
    if not sizes or not stack:
        print(f"nothing to measure: {SOURCES} and {objects}", file=sys.stderr)
        return 1
    problems = [f"{name}: {n} lines" for name, n in sizes.items() if n > MAX_LINES]
    problems += [
        f"{name}: a frame of {size} B ({kind})"
        for name, size, kind in stack
        if size > MAX_FRAME or kind not in ("static", "dynamic,bounded")
    ]
    longest = max(sizes.items(), key=lambda item: item[1])
    largest = max(stack, key=lambda item: item[1])
    print(f"{len(sizes)} functions, longest {longest[0]}: {longest[1]} lines (limit {MAX_LINES})")
    print(f"largest stack frame {largest[0]}: {largest[1]} B (limit {MAX_FRAME})")
    for problem in problems:
        print(f"over a limit: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
