"""docs/architecture.md's generated parts (each module's job, the event schema) match the code."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import architecture_doc  # noqa: E402


def test_the_generated_blocks_are_current():
    current = architecture_doc.DOC.read_text(encoding="utf-8")
    assert architecture_doc.regenerate(current) == current, "run: python scripts/architecture_doc.py"


def test_every_module_is_listed_with_its_job():
    table = architecture_doc.module_table()
    modules = sorted(p for p in (ROOT / "src" / "pbtlab").rglob("*.py"))
    assert table.count("\n| `") == len(modules)
    assert "| `rundir/reader.py` | ``RunDir(path)``: the one reader of a pbtlab run directory. |" in table
    missing = [line for line in table.splitlines()[2:] if line.endswith("|  |")]
    assert missing == [], "these modules need a docstring"


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "architecture.md"
    stale.write_text("<!-- generated: modules -->\nold\n<!-- end: modules -->\n"
                     "<!-- generated: events -->\n<!-- end: events -->\n", encoding="utf-8")
    monkeypatch.setattr(architecture_doc, "DOC", stale)
    assert architecture_doc.main(["--check"]) == 1
    assert architecture_doc.main([]) == 0 and architecture_doc.main(["--check"]) == 0
    assert "| `tuner.py` |" in stale.read_text(encoding="utf-8")


def test_the_script_runs_as_documented():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "architecture_doc.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
