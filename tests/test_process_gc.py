"""`pbtlab.process_gc`: automatic collection paused while pbtlab imports, what is alive then moved to the oldest
generation (nothing left frozen), and nothing else: the interpreter's exit finalizes what it would without pbtlab."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from pbtlab import process_gc


def test_paused_restores_collection_as_it_was_even_on_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), process_gc.paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with process_gc.paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


#: A child script as users write them: a function, a file left open in its globals, objects in reference cycles
#: (one made before ``import pbtlab``), still alive when it exits. Each finalizer writes a file.
EXIT_CHILD = r"""
import atexit, gc, os, sys

out, with_pbtlab = sys.argv[1], sys.argv[2]

class Node:
    def __init__(self, name):
        self.name, self.me = name, self
    def __del__(self, _open=open, _join=os.path.join, _out=out):  # works late in shutdown too
        with _open(_join(_out, self.name), "w") as handle:
            handle.write("finalized")

made_before = Node("made_before_import")
if with_pbtlab != "no":
    import pbtlab
if with_pbtlab == "run":  # a short PBT run in this process (in a temporary directory) before the script goes on
    import tempfile
    from pbtlab.examples.runs import run_toy_pbt
    run_toy_pbt(iterations=8, storage_path=tempfile.mkdtemp())

def helper():  # the module's globals and this function form a cycle: only the collector frees them
    return log

log = open(os.path.join(out, "log.txt"), "w")
log.write("written, never closed or flushed")
Node("garbage")            # a cycle: only the collector can free it
kept = Node("still_alive")  # reachable until the interpreter tears the module down
def frozen_at_exit():  # registered last, so it runs before any other atexit handler
    with open(os.path.join(out, "frozen_at_exit"), "w") as handle:
        handle.write(str(gc.get_freeze_count()))
atexit.register(frozen_at_exit)
"""


def _run_exit_child(tmp_path, with_pbtlab: str) -> dict[str, str]:
    out = tmp_path / with_pbtlab
    out.mkdir()
    subprocess.run([sys.executable, "-c", EXIT_CHILD, str(out), with_pbtlab], check=True, timeout=60,
                   env={**os.environ, "TMPDIR": str(tmp_path)})
    return {name: (out / name).read_text() for name in os.listdir(out)}


def test_importing_pbtlab_changes_nothing_the_interpreters_exit_finalizes(tmp_path):
    without = _run_exit_child(tmp_path, "no")
    assert without == {"log.txt": "written, never closed or flushed", "made_before_import": "finalized",
                       "garbage": "finalized", "still_alive": "finalized", "frozen_at_exit": "0"}
    assert _run_exit_child(tmp_path, "import") == without  # (an exit that froze them lost all but one)
    assert _run_exit_child(tmp_path, "run") == without


#: A child that drops cyclic garbage just before ``import pbtlab`` (optionally with something frozen first) and
#: reports the collector's state after the import, after a young collection and after a full one.
PROMOTE_CHILD = r"""
import gc, json, sys

out, freeze_first = sys.argv[1], sys.argv[2] == "1"
finalized = []

class Node:
    def __init__(self, name):
        self.name, self.me = name, self
    def __del__(self):
        finalized.append(self.name)

gc.disable()  # no automatic collection: only the import's own handling and the ones below
if freeze_first:
    gc.freeze()
frozen_before = gc.get_freeze_count()
Node("dropped_before_import")  # cyclic garbage, young
import pbtlab
state = {"frozen_before": frozen_before, "frozen_after_import": gc.get_freeze_count(),
         "young_after_import": gc.get_count()[0]}
gc.collect(1)
state["after_young"] = list(finalized)
gc.collect()
state["after_full"] = list(finalized)
with open(out, "w") as handle:
    json.dump(state, handle)
"""


def _promote_child(tmp_path, freeze_first: bool) -> dict:
    out = tmp_path / f"promote_{freeze_first}.json"
    subprocess.run([sys.executable, "-c", PROMOTE_CHILD, str(out), "1" if freeze_first else "0"], check=True,
                   timeout=60)
    return json.loads(out.read_text())


def test_the_import_moves_what_is_alive_to_the_oldest_generation_and_freezes_nothing(tmp_path):
    state = _promote_child(tmp_path, freeze_first=False)
    assert state["frozen_before"] == state["frozen_after_import"] == 0  # frozen for a moment only
    assert state["young_after_import"] < 100  # the import's objects are not waiting for a young collection
    assert state["after_young"] == []  # garbage young at the import waits for a full collection...
    assert state["after_full"] == ["dropped_before_import"]  # ...which finds it


def test_the_import_thaws_nothing_someone_else_froze(tmp_path):
    state = _promote_child(tmp_path, freeze_first=True)
    assert state["frozen_before"] > 0 and state["frozen_after_import"] >= state["frozen_before"] - 10
    assert state["young_after_import"] > 10_000  # nothing moved: the import's objects are young...
    assert state["after_young"] == ["dropped_before_import"]  # ...and a young collection finds the garbage


COLLECTIONS = """
import gc, json, sys
if {disable}:
    gc.disable()
paused_for = {{}}


class Spy:  # records, as each pbtlab module is looked for, whether automatic collection is on
    def find_spec(self, name, path=None, target=None):
        if name.startswith("pbtlab."):
            paused_for.setdefault(name, not gc.isenabled())
        return None


sys.meta_path.insert(0, Spy())
import pbtlab
print(json.dumps({{"paused_for": paused_for, "enabled": gc.isenabled()}}))
"""


@pytest.mark.parametrize("disable", [False, True])
def test_collection_is_paused_before_pbtlab_imports_anything_and_left_as_it_was_found(disable):
    """pbtlab's first statement pauses collection, before any of its modules is imported: a collection the
    caller's allocations had made due (right after numpy's import, about 0.6 ms of young objects) does not
    run inside pbtlab's import. A caller that had turned collection off keeps it off."""
    out = subprocess.run([sys.executable, "-c", COLLECTIONS.format(disable=disable)], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    state = json.loads(out.splitlines()[-1])
    assert "pbtlab.process_gc" in state["paused_for"] and len(state["paused_for"]) > 40
    assert all(state["paused_for"].values()), [name for name, paused in state["paused_for"].items() if not paused]
    assert state["enabled"] is (not disable)
