"""Schedulers are built on public (or their own) names: no scheduler module reads another class's private
attributes or imports another module's private names. ``base.py`` defines the contract; every other module
under ``schedulers/`` (PBT, PB2, replay, the strategies, and any scheduler added later) is checked."""

from __future__ import annotations

import ast
import glob
import importlib
import inspect
import os

import pytest

SCHEDULERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "pbtlab",
                          "schedulers")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _owned_names(tree: ast.AST) -> set[str]:
    """Private names the module defines itself: functions, classes, assigned attributes and class fields."""
    owned: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            owned.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            owned.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            owned.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            owned.add(node.target.id)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "__slots__" and isinstance(node.value, ast.Tuple):
                    owned.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
    return {name for name in owned if _private(name)}


def _member_names(tree: ast.AST) -> set[str]:
    """Private members the module's classes define: methods, class-level names and ``obj._x = ...`` stores."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if _private(name)}


def private_uses(source: str, filename: str = "<source>", parent_sources: tuple[str, ...] = ()) -> list[str]:
    """Each place ``source`` imports another module's private name, reads a private attribute it does not
    define itself (``obj._x``, ``getattr(obj, "_x")``), or overrides, reads or sets a private member of a
    parent class defined in one of ``parent_sources`` (other modules), as ``file:line: what``."""
    tree = ast.parse(source, filename)
    owned = _owned_names(tree)
    parents: set[str] = set()
    for parent in parent_sources:
        parents |= _member_names(ast.parse(parent))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in parents:
                    found.append(f"{filename}:{item.lineno}: overrides its parent's private {item.name}")
        if isinstance(node, ast.Attribute) and node.attr in parents:
            found.append(f"{filename}:{node.lineno}: uses its parent's private .{node.attr}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{filename}:{node.lineno}: imports {alias.name} from {node.module}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in owned:
            found.append(f"{filename}:{node.lineno}: reads .{node.attr}, which this module does not define")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and _private(node.args[1].value) and node.args[1].value not in owned:
            found.append(f"{filename}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return sorted(found)


def parent_sources(path: str) -> tuple[str, ...]:
    """The sources of the other pbtlab modules that define base classes of the classes ``path`` defines."""
    module = importlib.import_module(f"pbtlab.schedulers.{os.path.basename(path)[:-3]}")
    files = set()
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        for base in cls.__mro__[1:]:
            if base.__module__.startswith("pbtlab.") and base.__module__ != module.__name__:
                files.add(inspect.getsourcefile(base))
    sources = []
    for file in sorted(f for f in files if f):
        with open(file, encoding="utf-8") as handle:
            sources.append(handle.read())
    return tuple(sources)


def scheduler_modules() -> list[str]:
    paths = sorted(glob.glob(os.path.join(SCHEDULERS, "*.py")))
    return [p for p in paths if os.path.basename(p) not in ("base.py", "__init__.py")]


def test_the_checked_modules_include_pbt_pb2_replay_and_the_strategies():
    names = {os.path.basename(p) for p in scheduler_modules()}
    assert {"pbt.py", "pb2.py", "replay.py", "fifo.py", "strategies.py", "ranking.py", "statistics.py"} <= names


@pytest.mark.parametrize("path", scheduler_modules(), ids=os.path.basename)
def test_scheduler_module_uses_no_other_class_private_names(path):
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    assert private_uses(source, os.path.basename(path), parent_sources(path)) == []


def test_the_check_finds_what_pb2_used_to_do():
    """PB2 once overrode PBT's private ``_save_state``, read its members and imported ``_MemberState``."""
    old_pb2 = (
        "from pbtlab.schedulers.pbt import PopulationBasedTraining, _MemberState, _number\n"
        "class PB2(PopulationBasedTraining):\n"
        "    def _save_state(self, state, time_value, result, trial, decision):\n"
        "        super()._save_state(state, time_value, result, trial, decision)\n"
        "        score = self._members[trial.trial_id].last_score\n"
        "        ranking = getattr(self, '_ranking')\n"
        "        self._observations = [score, ranking]\n"
        "        return self._observations\n"
    )
    old_pbt = (
        "class PopulationBasedTraining:\n"
        "    def __init__(self):\n"
        "        self._members = {}\n"
        "    def _save_state(self, state, time_value, result, trial, decision):\n"
        "        self._members[trial.trial_id] = state\n"
    )
    assert private_uses(old_pb2, "old_pb2.py", (old_pbt,)) == [
        "old_pb2.py:1: imports _MemberState from pbtlab.schedulers.pbt",
        "old_pb2.py:1: imports _number from pbtlab.schedulers.pbt",
        "old_pb2.py:3: overrides its parent's private _save_state",
        "old_pb2.py:4: uses its parent's private ._save_state",
        "old_pb2.py:5: reads ._members, which this module does not define",
        "old_pb2.py:5: uses its parent's private ._members",
        "old_pb2.py:6: getattr(..., '_ranking')",
    ]
    assert private_uses(old_pb2.replace("_save_state", "on_check").replace("self._members", "self.members")
                        .replace(", _MemberState, _number", "").replace("getattr(self, '_ranking')", "None"),
                        "new_pb2.py", (old_pbt,)) == []
