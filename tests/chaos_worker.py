"""A driver process for the fault-injection tests: run (or resume) a seeded 4-trial PBT experiment.

    python chaos_worker.py STORAGE NAME SEED KILL_AFTER_REPORTS FAIL_DIR

KILL_AFTER_REPORTS > 0 makes the process SIGKILL itself at that report (counted in this process);
FAIL_DIR, if not "-", makes some trials raise once at fixed iterations (a marker file per failure
remembers it happened, across restarts of the driver).
"""

from __future__ import annotations

import os
import signal
import sys

import pbtlab.session as session
from pbtlab import tune
from pbtlab.config import FailureConfig, RunConfig, TuneConfig
from pbtlab.examples.runs import initial_h0, toy_scheduler
from pbtlab.examples.toy import train_func
from pbtlab.tuner import Tuner

#: (trial index, iteration) pairs at which the trainable raises once.
FAILURES = [(1, 10), (3, 37), (0, 61)]


def install_hooks(kill_after: int, fail_dir: str | None) -> None:
    """Wrap every trial's ``tune.report``: inject the failures, then SIGKILL at the chosen report."""
    original = session.TrialSession.report
    count = {"n": 0}

    def report(self, metrics, checkpoint=None):
        if fail_dir is not None:
            index = int(self.spec.trial_id.rsplit("_", 1)[1])
            step = metrics["train_step"]
            marker = os.path.join(fail_dir, f"{index}_{step}")
            if (index, step) in FAILURES and not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError(f"injected failure of trial {index} at step {step}")
        count["n"] += 1
        if count["n"] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, metrics, checkpoint)

    session.TrialSession.report = report  # type: ignore[method-assign]


def main() -> None:
    storage, name, seed, kill_after, fail_dir = sys.argv[1:6]
    fail = None if fail_dir == "-" else fail_dir
    install_hooks(int(kill_after), fail)
    trainable = train_func
    path = os.path.join(storage, name)
    if os.path.exists(os.path.join(path, "state.json")):
        Tuner.restore(path, trainable).fit()
        return
    Tuner(
        trainable,
        param_space={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4), "h0": tune.grid_search(initial_h0(4)),
                     "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]), "checkpoint_interval": 4},
        tune_config=TuneConfig(metric="Q", mode="max", seed=int(seed), scheduler=toy_scheduler(4, True)),
        run_config=RunConfig(name=name, storage_path=storage, stop={"training_iteration": 100},
                             failure_config=FailureConfig(max_failures=3), verbose=0,
                             state_save_period_s=0),  # save at every consistent cut: more resume points
    ).fit()


if __name__ == "__main__":
    main()
