"""What a newcomer relies on in the repository's layout, checked against the tree (no servers).

- docs/architecture.md names every module of the product packages under its package's heading
  (`## \\`domain/\\``, `### \\`domain/stops/\\``: a module by file name, a subpackage as `name/`),
  and every module or folder it names exists: the code map cannot go stale either way.
- No Python module (product packages and tests) reaches 800 lines (issue 22).
- The README stays a ten-minute read (at most 400 lines), and every relative link in it and in
  docs/*.md points to a file that exists (anchors are not checked).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# The product packages: [tool.importlinter] root_packages in pyproject.toml.
PACKAGES = ("domain", "connectors", "sinks", "flows", "brokerflow", "edge", "quality", "console",
            "simulator", "bench")  # fmt: skip
MAX_MODULE_LINES = 800
MAX_README_LINES = 400
# Not the repository's own modules: hidden folders (.venv, .git, caches), generated ones.
SKIPPED_DIRS = {"__pycache__", "build", "dist", "node_modules"}
GENERATED = {ROOT / "bench" / "data"}

_HEADING = re.compile(r"^#{1,6}\s+`([\w./-]+/)`\s*$")
_ANY_HEADING = re.compile(r"^#{1,6}\s")
_TOKEN = re.compile(r"`([\w./-]+(?:\.py|/))`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _sections() -> dict[str, set[str]]:
    """The page's names (backticked `x.py` and `name/`) under each folder heading; the text
    before the first heading is filed under ""."""
    sections: dict[str, set[str]] = {"": set()}
    current = ""
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        if m := _HEADING.match(line):
            current = m.group(1)
            sections.setdefault(current, set())
            continue
        if _ANY_HEADING.match(line):
            current = ""  # a heading that names no folder: its names resolve from the root
            continue
        sections[current].update(_TOKEN.findall(line))
    return sections


def _packages() -> list[Path]:
    """Every product package and subpackage (a folder with an `__init__.py`)."""
    found = []
    for name in PACKAGES:
        found.extend(p.parent for p in sorted((ROOT / name).rglob("__init__.py")))
    return [p for p in found if "__pycache__" not in p.parts]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_code_map_names_every_module_under_its_package() -> None:
    sections = _sections()
    missing = []
    for package in _packages():
        heading = _rel(package) + "/"
        names = sections.get(heading)
        if names is None:
            missing.append(f"{heading} (no heading `{heading}`)")
            continue
        for module in sorted(package.glob("*.py")):
            if module.name != "__init__.py" and module.name not in names:
                missing.append(_rel(module))
        for sub in sorted(p.parent for p in package.glob("*/__init__.py")):
            if sub.name + "/" not in names:
                missing.append(_rel(sub) + "/")
    assert not missing, (
        "docs/architecture.md does not name these modules under their package's heading "
        "(a module by file name, a subpackage as `name/`):\n  " + "\n  ".join(missing)
    )


def test_every_module_the_code_map_names_exists() -> None:
    unknown = []
    for heading, names in _sections().items():
        base = ROOT / heading if heading else ROOT
        if heading and not base.is_dir():
            unknown.append(f"heading `{heading}`")
        for name in sorted(names):
            if not ((base / name).exists() or (ROOT / name).exists()):
                unknown.append(f"`{name}` (under `{heading or 'the intro'}`)")
    assert not unknown, "docs/architecture.md names what the tree does not hold:\n  " + (
        "\n  ".join(unknown)
    )


def _python_files() -> list[Path]:
    found = []
    stack = [ROOT]
    while stack:
        folder = stack.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                skip = entry.name.startswith(".") or entry.name in SKIPPED_DIRS
                skip = skip or entry.name.endswith(".egg-info") or entry in GENERATED
                if not skip:
                    stack.append(entry)
            elif entry.suffix == ".py":
                found.append(entry)
    return found


def test_the_largest_module_is_under_800_lines() -> None:
    sizes = {_rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in _python_files()}
    assert len(sizes) > 100, f"found only {len(sizes)} modules under {ROOT}: wrong root?"
    too_big = sorted(((n, p) for p, n in sizes.items() if n >= MAX_MODULE_LINES), reverse=True)
    assert not too_big, f"modules of {MAX_MODULE_LINES} lines or more:\n  " + "\n  ".join(
        f"{path}: {n} lines" for n, path in too_big
    )


def test_the_readme_is_a_ten_minute_read() -> None:
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES})"


def _relative_links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    targets = _LINK.findall(text)
    targets += [m.group(1) for line in text.splitlines() if (m := _REF_LINK.match(line))]
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.I)]


def test_every_relative_link_of_the_readme_and_docs_exists() -> None:
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _relative_links(page):
            path = target.split("#", 1)[0].split("?", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{_rel(page)}: {target}")
    assert not broken, "relative links to files that do not exist:\n  " + "\n  ".join(broken)
