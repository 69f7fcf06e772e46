"""Regenerate the generated parts of docs/architecture.md: the module table and the event schema.

    python scripts/architecture_doc.py          # rewrite the marked blocks in place
    python scripts/architecture_doc.py --check  # exit 1 if the file is out of date (tests/test_architecture_doc.py)

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``. The module table is made of each
module's first docstring line, so a module documents itself once, in its own file.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "pbtlab"
DOC = ROOT / "docs" / "architecture.md"


def first_line(path: pathlib.Path) -> str:
    """The first paragraph of a module's docstring, on one line ('' if it has none)."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = docstring.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def module_table() -> str:
    rows = ["| module | job |", "|---|---|"]
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        name = relative[:-len("/__init__.py")] + "/" if relative.endswith("/__init__.py") else relative
        if name == "__init__.py":
            name = "pbtlab/__init__.py"
        line = first_line(path).replace("|", "\\|")
        rows.append(f"| `{name}` | {line} |")
    return "\n".join(rows)


def event_schema() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from pbtlab.rundir.records import schema_markdown

    return schema_markdown().strip()


BLOCKS = {"modules": module_table, "events": event_schema}


def regenerate(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end: {name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"{DOC} has no block <!-- generated: {name} --> ... <!-- end: {name} -->")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    fresh = regenerate(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{DOC} is out of date: run python scripts/architecture_doc.py")
            return 1
        return 0
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
