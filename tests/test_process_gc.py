"""`pbtlab.process_gc`: automatic collection paused while pbtlab imports, and the collect-then-freeze at exit that
spares the interpreter's final full collections, without skipping a finalizer of garbage made before exit."""

from __future__ import annotations

import gc
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


#: A child that imports pbtlab, leaves cyclic garbage whose finalizer writes a file, keeps a cycle alive to the end,
#: and reports what the exit handler did.
CHILD = r"""
import atexit, gc, os, sys
import pbtlab
from pbtlab import process_gc

out = sys.argv[1]

class Node:
    def __init__(self, name):
        self.name, self.me = name, self
    def __del__(self, _open=open, _join=os.path.join, _out=out):  # works late in shutdown too
        with _open(_join(_out, self.name), "w") as handle:
            handle.write("finalized")

Node("garbage")            # a cycle: only the collector can free it, and nothing collects before exit
kept = Node("still_alive")  # reachable until the interpreter tears the module down

def report():  # registered after pbtlab's handler, so it runs before it
    with open(os.path.join(out, "registered"), "w") as handle:
        handle.write(str(process_gc.register_freeze_at_exit()))
atexit.register(report)
gc.disable()  # no automatic collection may free the garbage before exit
"""


def _run_child(tmp_path, freeze: str | None) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != process_gc.FREEZE_AT_EXIT_VARIABLE}
    if freeze is not None:
        env[process_gc.FREEZE_AT_EXIT_VARIABLE] = freeze
    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], check=True, env=env, timeout=60)
    return {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)}


def test_garbage_made_before_exit_is_still_finalized_and_live_cycles_are_spared(tmp_path):
    files = _run_child(tmp_path, None)
    assert files["registered"] == "True"
    assert files["garbage"] == "finalized"  # collected by the handler's gc.collect()
    assert "still_alive" not in files  # frozen: the interpreter's final collections skip it


def test_freeze_at_exit_0_leaves_the_shutdown_as_it_was(tmp_path):
    files = _run_child(tmp_path, "0")
    assert files["registered"] == "False"
    assert files == {"registered": "False", "garbage": "finalized", "still_alive": "finalized"}


def test_the_handler_is_registered_once():
    before = process_gc._registered
    assert process_gc.register_freeze_at_exit() is True and before is True  # pbtlab's import registered it
    script = ("import atexit, pbtlab\nfrom pbtlab import process_gc\n"
              "process_gc.register_freeze_at_exit(); process_gc.register_freeze_at_exit()\n"
              "print(atexit._ncallbacks())")
    with_pbtlab = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    without = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                             env={**os.environ, process_gc.FREEZE_AT_EXIT_VARIABLE: "0"})
    assert int(with_pbtlab.stdout) == int(without.stdout) + 1
