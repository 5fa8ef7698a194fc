"""The design lives in docs/: every reference to it resolves, and the package keeps the shape
docs/architecture.md#layout describes (no import cycles, no private names imported)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from processor.records import REASONS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = re.compile(r"docs/([\w/-]+\.md)(?:#([\w-]+))?")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub writes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", doc.read_text(encoding="utf-8"), re.MULTILINE)
    return {slug(h) for h in headings}


def test_every_docs_reference_names_an_existing_heading() -> None:
    broken: list[str] = []
    seen = 0
    for path in _tracked("*.py", "*.c", "*.h", "*.md", "Makefile*", "*.yaml", "*.yml", "*.sh"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for name, anchor in REFERENCE.findall(line):
                seen += 1
                doc = DOCS / name
                where = f"{path.relative_to(ROOT)}:{number}: docs/{name}#{anchor}"
                if not doc.is_file():
                    broken.append(f"{where} (no such document)")
                elif anchor and anchor not in anchors(doc):
                    broken.append(f"{where} (no such heading)")
    assert seen > 50, "the code should point at its design"
    assert not broken, "\n".join(broken)


def test_relative_links_between_documents_resolve() -> None:
    broken = []
    for doc in DOCS.glob("*.md"):
        for target, anchor in re.findall(r"\]\(([\w/.-]+\.md)(?:#([\w-]+))?\)", doc.read_text()):
            linked = (doc.parent / target).resolve()
            if not linked.is_file() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{doc.name}: {target}#{anchor}")
    assert not broken, broken


def test_nothing_points_outside_the_repository_for_the_design() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _tracked("*.py", "*.c", "*.h", "*.md", "*.yaml", "*.yml", "Makefile*", "*.sh")
        # Written so that it does not match itself.
        if re.search(r"DESIG[N] §|\.\./share[d]|share[d]/DESIGN", p.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_the_documented_reason_codes_are_the_decoders() -> None:
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    section = text.split("## Input: change records", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
    assert set(documented) >= set(REASONS), set(REASONS) - set(documented)
    assert set(documented) <= set(REASONS) | {
        "entityType",
        "operation",
        "id",
        "observedAt",
        "correlationId",
        "instance",
    }


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `processor` import in a module, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("processor"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("processor")]
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in (ROOT / "processor").rglob("*.py"):
        for module, names in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and module != "processor":
                offenders.append(f"{_module_name(path)}: from {module} import {private}")
    assert not offenders, offenders


def test_the_package_has_no_import_cycles() -> None:
    modules = {_module_name(p): p for p in (ROOT / "processor").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for module, names in _imports(path):
            for candidate in [f"{module}.{n}" for n in names] + [module]:
                if candidate in modules and candidate != name:
                    deps.add(candidate)
                    break
        graph[name] = deps
    # Packages' __init__ modules import nothing; a cycle is a path back to its start.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join([*stack[stack.index(dep) :], dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _readme_section(title: str) -> str:
    """A README section up to the next heading of its level or above (code blocks left out:
    their comments start with # too)."""
    text = re.sub(
        r"^```.*?^```", "", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.M | re.S
    )
    level = len(title) - len(title.lstrip("#"))
    body = text.split(f"\n{title}\n", 1)[1]
    return re.split(rf"^#{{1,{level}}} ", body, maxsplit=1, flags=re.MULTILINE)[0]


def test_the_readme_lists_every_exit_code_every_setting_and_every_command() -> None:
    import argparse

    from processor import errors
    from processor.cli import build_parser
    from processor.config import Settings

    codes = re.findall(r"^\| (\d) \|", _readme_section("### Exit codes"), re.MULTILINE)
    constants = {
        errors.OK,
        errors.FAILED,
        errors.USAGE,
        errors.KAFKA_FATAL,
        errors.KAFKA_UNREACHABLE,
    }
    assert sorted(int(c) for c in codes) == sorted(constants) == [0, 1, 2, 3, 4]

    # The settings table, and the hub's own in its section.
    tables = _readme_section("## Configuration") + _readme_section("## The TMF notification hub")
    rows = " ".join(re.findall(r"^\| (.+?) \|", tables, re.MULTILINE))
    missing = set(Settings.model_fields) - set(re.findall(r"`(\w+)`", rows))
    assert not missing, f"settings missing from the README's tables: {sorted(missing)}"

    commands = _readme_section("## Commands")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in sub.choices:
        assert f"`tmf-events {name}" in commands, f"command {name} missing from the README"
