"""A driver process for the crash-cost tests and ``bench/crash_cost.py``: 4 function trials at different
speeds, killed (SIGKILL) when the trials together have run a given number of iterations, then restored.

    python crash_driver.py LOG_DIR STORAGE NAME [--framework pbtlab|ray-tune] [--executor inprocess|greenlets|process|ray]
        [--scheduler fifo|pbt-sync|pbt-async] [--every 3] [--iterations 30] [--delays 0.01,0.02,0.04,0.06]
        [--kill-at 80] [--phase 1] [--save-period SECONDS]

The same script runs on pbtlab and on Ray Tune (``--framework``); a run directory that exists is restored
(``Tuner.restore``), else a new run starts. Each trial checkpoints every ``--every`` iterations (0: never).

What the trials write into LOG_DIR (the measurement):

- ``ran.log``: a line ``PHASE TRIAL_ID STEP`` for every iteration whose report returned, that is, that the
  driver has taken in (written under a lock, so the lines of parallel trials do not mix);
- ``pids``: the process id of every process that ran a trial (the test waits for them to end);
- the trial whose report makes the count of phase ``--phase`` reach ``--kill-at`` SIGKILLs the driver
  (its pid is in ``driver.pid``) once, a moment later: ``killed_<phase>`` marks that it happened.

The trainable is deterministic: its score at a step depends only on the step and the config's ``lr``
history, which a checkpoint restores, so rows can be compared exactly.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import tempfile
import time

RAN_FILE = "ran.log"
KILL_DELAY_S = 0.1


def note_pid(log_dir: str) -> None:
    with open(os.path.join(log_dir, "pids"), "a") as handle:
        handle.write(f"{os.getpid()}\n")


def record_ran(log_dir: str, trial_id: str, step: int) -> None:
    """Append this iteration to ran.log; SIGKILL the driver if it is the ``kill_at``-th of this phase.

    The kill comes a moment (``KILL_DELAY_S``) after the count is reached, so that trials whose reports
    returned at the same time have written their lines: the log then holds every iteration the driver
    acknowledged, which is what the floor is counted from."""
    kill = False
    with open(os.path.join(log_dir, "lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(os.path.join(log_dir, "phase")) as handle:
            phase, kill_at = (int(v) for v in handle.read().split())
        with open(os.path.join(log_dir, RAN_FILE), "a+") as handle:
            handle.write(f"{phase} {trial_id} {step}\n")
            handle.flush()
            handle.seek(0)
            count = sum(1 for line in handle if line.split()[0] == str(phase))
        marker = os.path.join(log_dir, f"killed_{phase}")
        if kill_at and count >= kill_at and not os.path.exists(marker):
            open(marker, "w").close()
            kill = True
    if kill:
        time.sleep(KILL_DELAY_S)
        with open(os.path.join(log_dir, "driver.pid")) as handle:
            driver = int(handle.read())
        os.kill(driver, signal.SIGKILL)


def make_trainable(tune):  # type: ignore[no-untyped-def]
    """The trainable, written against the ``tune`` module given (pbtlab's or Ray's: the same API)."""

    def crash_trainable(config):  # type: ignore[no-untyped-def]
        log_dir = config["log_dir"]
        note_pid(log_dir)
        trial_id = tune.get_context().get_trial_id()
        step, value = 0, 0.0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as handle:
                saved = json.load(handle)
            step, value = saved["step"], saved["value"]
        while step < config["iterations"]:
            step += 1
            time.sleep(config["delay"])
            value += config["lr"]
            metrics = {"score": value, "step": step}
            if config["every"] and step % config["every"] == 0:
                with tempfile.TemporaryDirectory() as folder:
                    with open(os.path.join(folder, "state.json"), "w") as handle:
                        json.dump({"step": step, "value": value}, handle)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)
            record_ran(log_dir, trial_id, step)

    return crash_trainable


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log_dir")
    parser.add_argument("storage")
    parser.add_argument("name")
    parser.add_argument("--framework", choices=("pbtlab", "ray-tune"), default="pbtlab")
    parser.add_argument("--executor", choices=("inprocess", "greenlets", "process", "ray"), default="inprocess")
    parser.add_argument("--scheduler", choices=("fifo", "pbt-sync", "pbt-async"), default="fifo")
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--delays", default="0.01,0.015,0.06,0.08")
    parser.add_argument("--kill-at", type=int, default=0)
    parser.add_argument("--phase", type=int, default=1)
    parser.add_argument("--save-period", type=float, default=None,
                        help="pbtlab's RunConfig(state_save_period_s); default None (automatic)")
    parser.add_argument("--helper", action="store_true",
                        help="pbtlab: the loggers' helper process from the start, writing result rows 4 at a time")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    os.makedirs(args.log_dir, exist_ok=True)
    with open(os.path.join(args.log_dir, "driver.pid"), "w") as handle:
        handle.write(str(os.getpid()))
    with open(os.path.join(args.log_dir, "phase"), "w") as handle:
        handle.write(f"{args.phase} {args.kill_at}")
    delays = [float(d) for d in args.delays.split(",")]
    if args.framework == "ray-tune":
        from ray import tune
        from ray.tune.schedulers import PopulationBasedTraining
        run_config = tune.RunConfig(name=args.name, storage_path=args.storage, verbose=0)
        trainable = tune.with_resources(make_trainable(tune), {"cpu": 0.25})
    else:
        from pbtlab import tune  # type: ignore[no-redef]
        from pbtlab.schedulers import PopulationBasedTraining  # type: ignore[assignment]
        run_config = tune.RunConfig(name=args.name, storage_path=args.storage, verbose=0, executor=args.executor,
                                    state_save_period_s=args.save_period)
        if args.helper:  # what a run of 64 trials or more does, here with 4
            from pbtlab.loggers import _BatchedLogger
            from pbtlab.rundir.store import ExperimentStore

            _BatchedLogger.HELPER_FROM_TRIALS = 1
            ExperimentStore.SEND_ROWS = 4
            os.environ["PBTLAB_ROW_WRITER"] = "1"
        trainable = make_trainable(tune)
    path = os.path.join(args.storage, args.name)
    if os.path.isdir(path):
        tune.Tuner.restore(path, trainable).fit()
        return
    scheduler = None
    if args.scheduler != "fifo":
        scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4,
                                            hyperparam_mutations={"lr": [0.5, 1.0, 2.0, 4.0]},
                                            synch=args.scheduler == "pbt-sync")
    param_space = {"delay": tune.grid_search(delays), "lr": 1.0, "every": args.every,
                   "iterations": args.iterations, "log_dir": os.path.abspath(args.log_dir)}
    seeded = {"seed": 0} if args.framework == "pbtlab" else {}
    tune_config = tune.TuneConfig(metric="score", mode="max", scheduler=scheduler,
                                  max_concurrent_trials=len(delays), **seeded)
    tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


if __name__ == "__main__":
    main(sys.argv[1:])
