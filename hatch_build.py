"""Wheel build hook: compiles the C fast path (processor/native/*.c) to processor/_native.

Without a C compiler (or zlib's header, for CRC-32) the package still builds and works: the
processor then takes its Python path for every record, about five times slower
(bench/core.py). Set TMF_REQUIRE_NATIVE=1 to make a failed compile fail the build instead
(CI, images).

Run as a script it builds the same sources another way, outside the package:

    python hatch_build.py sanitize OUT   clang, AddressSanitizer + UBSan + fuzzer coverage
                                         (make sanitize-build; docs/native.md#sanitizers)
    python hatch_build.py check OUT      gcc with -Werror and -fstack-usage: OUT/obj/*.su
                                         (make native-check)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# One list of flags for every build of the C path; the others add to it.
FLAGS = ["-O3", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
LIBRARIES = ["z"]  # zlib: crc32_z
SANITIZE = [
    "-O1",
    "-g",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined,fuzzer-no-link",
    "-fno-sanitize-recover=all",
]
CHECK = ["-Werror", "-fstack-usage"]


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        editable = version == "editable"
        out = root / "processor" if editable else Path(tempfile.mkdtemp(prefix="tmf-native-"))
        try:
            built = compile_native(root, out)
        except Exception as exc:
            if os.environ.get("TMF_REQUIRE_NATIVE"):
                raise
            self.app.display_warning(
                f"tmf-events: the C fast path was not built ({exc}); "
                "the processor will run its Python path only"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:  # an editable install imports it from the source tree
            build_data["force_include"][str(built)] = f"processor/{built.name}"


def compile_native(
    root: Path,
    out: Path,
    *,
    extra: list[str] | None = None,
    compiler: str | None = None,
    objects: Path | None = None,
) -> Path:
    """Builds processor/native/*.c into `out`; returns the module's path."""
    from setuptools import Distribution, Extension

    native = root / "processor" / "native"
    extension = Extension(
        "_native",
        sources=sorted(p.relative_to(root).as_posix() for p in native.glob("*.c")),
        depends=sorted(p.relative_to(root).as_posix() for p in native.glob("*.h")),
        extra_compile_args=[*FLAGS, *(extra or [])],
        extra_link_args=[f for f in extra or [] if f.startswith("-fsanitize")],
        libraries=LIBRARIES,
    )
    cwd = os.getcwd()
    env = dict(os.environ)
    os.chdir(root)  # setuptools wants sources relative to the project
    try:
        if compiler is not None:
            os.environ["CC"] = compiler
            os.environ["LDSHARED"] = f"{compiler} -shared"
        dist = Distribution({"name": "tmf-events", "ext_modules": [extension]})
        cmd: Any = dist.get_command_obj("build_ext")
        cmd.build_lib = str(out)
        cmd.build_temp = str(objects or tempfile.mkdtemp(prefix="tmf-native-build-"))
        cmd.force = True
        cmd.ensure_finalized()
        cmd.run()
        return Path(cmd.get_ext_fullpath("_native"))
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("sanitize", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    how, out = argv[0], Path(argv[1]).resolve()
    root = Path(__file__).resolve().parent
    if how == "sanitize":
        built = compile_native(root, out, extra=SANITIZE, compiler=os.environ.get("CC", "clang"))
    else:
        built = compile_native(root, out, extra=CHECK, objects=out / "obj")
    print(built)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
