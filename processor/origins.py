"""Where each setting's value came from: a command-line flag, an environment variable, a line
of the `--config` file, or the default. Failure messages name it (processor/errors.py), so
an operator knows which of the four places to fix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

ENV_PREFIX = "TMF_EVENTS_"
NESTED = "__"


class Origins:
    """`flags`: setting name -> the flag that set it; `env`: the `TMF_EVENTS_*` variables
    (names as given); `lines`: setting path -> line of `file`."""

    def __init__(
        self,
        flags: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        file: Path | None = None,
        lines: Mapping[tuple[str, ...], int] | None = None,
    ) -> None:
        self.flags = dict(flags or {})
        self.env = {k: v for k, v in (env or {}).items() if k.upper().startswith(ENV_PREFIX)}
        self.file = file
        self.lines = dict(lines or {})

    def env_name(self, *path: str) -> str | None:
        """The variable that set `path`: the nested one (`TMF_EVENTS_KAFKA__linger.ms`) first,
        then the whole setting's. Names match case-insensitively, as the settings read them."""
        upper = {name.upper(): name for name in self.env}
        for depth in range(len(path), 0, -1):
            wanted = ENV_PREFIX + NESTED.join(path[:depth]).upper()
            if wanted in upper:
                return upper[wanted]
        return None

    def where(self, *path: str) -> str:
        """`flag --x`, `environment variable TMF_EVENTS_X`, `file F:line` or `default`."""
        if path and path[0] in self.flags:
            return f"flag {self.flags[path[0]]}"
        name = self.env_name(*path)
        if name is not None:
            return f"environment variable {name}"
        if self.file is not None:
            for depth in range(len(path), 0, -1):
                line = self.lines.get(path[:depth])
                if line is not None:
                    return f"file {self.file}:{line}"
        return "default"

    def describe(self, *path: str) -> str:
        """`<setting> from <where>`, the parenthesised part of a failure line."""
        return f"{'.'.join(path)} from {self.where(*path)}"


def yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key in a YAML document, by its path."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                here = (*path, str(key.value))
                out[here] = key.start_mark.line + 1
                walk(value, here)

    if root is not None:
        walk(root, ())
    return out
