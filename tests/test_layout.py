"""The package layout's promises: the core never names Ray (only ``compat/`` and the Ray executor do), and
every module that reads or writes a run directory goes through ``pbtlab.rundir``."""

from __future__ import annotations

import io
import pathlib
import re
import tokenize

import pbtlab

PACKAGE = pathlib.Path(pbtlab.__file__).parent
#: Where Ray may be named in code: the compatibility layer, and the Ray executor (an engine, not compatibility).
RAY_ALLOWED = ("compat/", "executors/ray.py")
RAY_NAME = re.compile(r"(^|_)ray($|_)|^ray[A-Z]|Ray", re.IGNORECASE)


def ray_names_in_code(source: str) -> list[tuple[int, str]]:
    """Identifiers (not strings, comments or docstrings) that name Ray: ``ray``, ``ray_x``, ``RayExecutor``...

    >>> ray_names_in_code("import ray\\nx = 'ray'  # ray\\nnp.array([1])\\nfrom_ray = RayGrid()")
    [(1, 'ray'), (4, 'from_ray'), (4, 'RayGrid')]
    """
    return [(token.start[0], token.string) for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.NAME and RAY_NAME.search(token.string)
            and not token.string.lower().endswith("array")]


def test_the_core_names_ray_only_in_documentation():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(RAY_ALLOWED):
            continue
        names = ray_names_in_code(path.read_text(encoding="utf-8"))
        if names:
            found[relative] = names
    assert found == {}


def test_the_scan_finds_ray_in_code_it_should_refuse():
    assert ray_names_in_code("from pbtlab.compat.ray import shim\n") == [(1, "ray")]
    assert ray_names_in_code("def reject_ray_only(): ...\n") == [(1, "reject_ray_only")]
    assert ray_names_in_code("'''Ray Tune's name'''\nvalue = 'ray'\n") == []


def test_every_module_says_what_it_offers():
    """Each module has a curated ``__all__`` of names it defines (or lazily provides); the command-line entry
    modules, which only parse arguments, are the exception."""
    import importlib

    entry_points = {"pbtlab.cli", "pbtlab.viz.cli", "pbtlab.serve.command"}
    missing, unknown = [], {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name in entry_points or name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra this environment lacks (the test extra installs them all)
            continue
        exported = getattr(module, "__all__", None)
        if exported is None:
            missing.append(name)
            continue
        absent = [n for n in exported if not hasattr(module, n)]
        if absent:
            unknown[name] = absent
    assert missing == [] and unknown == {}
