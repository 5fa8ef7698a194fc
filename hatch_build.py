"""Wheel build hook: compiles the C fast path (processor/native/*.c) to processor/_native.

Without a C compiler the package still builds and works: the processor then takes its
Python path for every record, about eight times slower (bench/core.py). Set
TMF_REQUIRE_NATIVE=1 to make a failed compile fail the build instead (CI, images).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NativeBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        editable = version == "editable"
        out = root / "processor" if editable else Path(tempfile.mkdtemp(prefix="tmf-native-"))
        try:
            built = _compile(root, out)
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


def _compile(root: Path, out: Path) -> Path:
    from setuptools import Distribution, Extension

    native = root / "processor" / "native"
    extension = Extension(
        "_native",
        sources=sorted(p.relative_to(root).as_posix() for p in native.glob("*.c")),
        depends=sorted(p.relative_to(root).as_posix() for p in native.glob("*.h")),
        extra_compile_args=["-O3", "-Wall", "-Werror=implicit-function-declaration"],
    )
    cwd = os.getcwd()
    os.chdir(root)  # setuptools wants sources relative to the project
    try:
        dist = Distribution({"name": "tmf-events", "ext_modules": [extension]})
        cmd: Any = dist.get_command_obj("build_ext")
        cmd.build_lib = str(out)
        cmd.build_temp = tempfile.mkdtemp(prefix="tmf-native-build-")
        cmd.ensure_finalized()
        cmd.run()
        return Path(cmd.get_ext_fullpath("_native"))
    finally:
        os.chdir(cwd)
