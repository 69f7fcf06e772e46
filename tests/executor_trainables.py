"""Trainables of the executor conformance suite (tests/test_executors.py), in a module of their own.

Ray and spawned workers import the module a trainable comes from; this one imports only what the
trainables need (not pytest or the suite), so each worker starts faster.
"""

from __future__ import annotations

import json
import os
import tempfile

from pbtlab import tune
from pbtlab.session import current_session

_STARTS: dict[str, int] = {}  # trial dir -> how often the function started in this worker process


def counting_trainable(config):
    """Deterministic: ``score`` grows by ``rate`` per step; a checkpoint every ``every`` steps.

    Reports how often the function started in this process (``starts``), the process id, and the step
    it restored from. ``fail_at`` makes the first attempt fail at that step: ``fail="raise"`` raises,
    ``fail="exit"`` kills the worker process, ``fail="always"`` raises on every attempt.
    """
    trial_dir = tune.get_context().get_trial_dir()
    _STARTS[trial_dir] = _STARTS.get(trial_dir, 0) + 1
    step, score, restored = 0, 0.0, -1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as path, open(os.path.join(path, "state.json")) as handle:
            state = json.load(handle)
        step, score, restored = state["step"], state["score"], state["step"]
    every = config.get("every", 2)
    while True:
        step += 1
        score += config["rate"]
        if config.get("fail_at") == step:
            marker = os.path.join(trial_dir, "failed_once")
            if config.get("fail") == "always" or not os.path.exists(marker):
                open(marker, "w").close()
                if config.get("fail") == "exit":
                    os._exit(3)
                raise RuntimeError(f"planned failure at step {step}")
        metrics = {"score": score, "step": step, "starts": _STARTS[trial_dir], "pid": os.getpid(),
                   "restored_step": restored}
        if step % every == 0:
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "state.json"), "w") as handle:
                    json.dump({"step": step, "score": score}, handle)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        else:
            tune.report(metrics)
        if config.get("max_steps") is not None and step >= config["max_steps"]:
            return


def saving_trainable(config):
    """Counts steps (from its checkpoint's step, if any) and reports a checkpoint at every even step.

    With ``config["hook"]`` it installs a save hook: "state" saves the current step, "nothing" saves
    nothing (returns None), "raise" raises, "not a checkpoint" returns a path string.
    """
    session = current_session()
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with open(os.path.join(checkpoint.path, "state.json")) as handle:
            step = json.load(handle)["step"]

    def write_state(name):
        path = os.path.join(tune.get_context().get_trial_dir(), name)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "state.json"), "w") as handle:
            json.dump({"step": step, "by": name}, handle)
        return tune.Checkpoint.from_directory(path)

    def save_hook():
        if config["hook"] == "raise":
            raise RuntimeError(f"cannot save at step {step}")
        if config["hook"] == "not a checkpoint":
            return tune.get_context().get_trial_dir()
        return write_state("saved_by_hook") if config["hook"] == "state" else None

    if config.get("hook"):
        session.save_hook = save_hook
    while True:
        step += 1
        tune.report({"step": step, "pid": os.getpid()},
                    checkpoint=write_state("reported") if step % 2 == 0 else None)
        if step >= config.get("max_steps", 1_000):
            return


def reports_then_sticks(config):
    """Reports 3 times, then spends 60 s in its 4th iteration (a trial stuck inside an iteration)."""
    import time

    for iteration in range(1, 100):
        time.sleep(0.05 if iteration <= 3 else 60.0)
        tune.report({"x": float(config["x"])})
