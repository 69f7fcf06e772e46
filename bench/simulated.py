"""Wall time of synchronous PBT on the simulated executor for 64, 256 and 1,024 trials, and its peer.

    python bench/simulated.py                     # 20 iterations per trial, median of 3 runs each
    python bench/simulated.py --quick             # 1 run each
    python bench/simulated.py --populations 64 1024 --iterations 40 --repeats 5

Each trial's state grows toward 100 at a rate set by its ``lr`` (PBT mutates ``lr``); an iteration takes
1 to 1.75 virtual seconds, and a checkpoint (the state) is written every 4 iterations, at PBT's
perturbation interval. Every trial runs at once, so the virtual makespan is the sum over the intervals of
their 5.5 s. The peer is the same model written as a function trainable (``tune.report`` with a
checkpoint directory every 4 iterations) on the in-process executor, whose iterations take no time at all:
the ratio says what simulating costs against running the cheapest possible real trainable. Both runs use
the same seed; "same" says whether they ended with the same scores.

Both are run with the default loggers (per-trial result.json, progress.csv, TensorBoard), as a user gets
them; the simulator is also run without them (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), which is how to
simulate large populations. "CPU s" is the process time of a simulated run (less sensitive than wall time
to other work on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from pbtlab import RunConfig, TuneConfig, Tuner, tune  # noqa: E402
from pbtlab.executors.simulated import SimulatedExecutor  # noqa: E402
from pbtlab.schedulers import PopulationBasedTraining  # noqa: E402

INTERVAL = 4
HEADER = ["trials", "reports", "exploits", "virtual s", "simulated wall s", "CPU s", "µs/report",
          "no loggers wall s", "CPU s", "in-process wall s", "in-process / simulated", "same"]


def growth(config, iteration, state):
    return state + config["lr"] * (1 - state / 100)


def seconds(config, iteration, state):
    return 1.0 + 0.25 * (iteration % INTERVAL)


def score(config, iteration, state):
    return {"score": state}


def function_trainable(config):
    """The simulated model as a real trainable: same state, same checkpoints, no time per iteration."""
    iteration, state = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as handle:
            saved = json.load(handle)
        iteration, state = saved["iteration"], saved["state"]
    while True:
        iteration += 1
        state = growth(config, iteration, state)
        if iteration % INTERVAL:
            tune.report({"score": state})
            continue
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as handle:
                json.dump({"iteration": iteration, "state": state}, handle)
            tune.report({"score": state}, checkpoint=tune.Checkpoint.from_directory(folder))


def run(trials: int, iterations: int, simulated: bool, loggers: bool = True) -> dict:
    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=INTERVAL,
                                        quantile_fraction=0.25, synch=True,
                                        hyperparam_mutations={"lr": tune.uniform(0.01, 10.0)})
    executor = SimulatedExecutor(score, update=growth, duration=seconds, initial_state=0.0,
                                 checkpoint_every=INTERVAL) if simulated else "inprocess"
    trainable = executor.trainable if simulated else function_trainable
    if loggers:
        os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
    else:
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    with tempfile.TemporaryDirectory() as storage:
        started, cpu = time.perf_counter(), time.process_time()
        results = Tuner(trainable, param_space={"lr": tune.uniform(0.01, 10.0)},
                        tune_config=TuneConfig(metric="score", mode="max", seed=0, num_samples=trials,
                                               scheduler=scheduler),
                        run_config=RunConfig(storage_path=storage, name="bench", verbose=0, executor=executor,
                                             stop={"training_iteration": iterations})).fit()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        return {"wall": wall, "cpu": cpu, "reports": sum(len(r.history()) for r in results),
                "exploits": len(results.events_of("exploit")),
                "scores": [r.metrics["score"] for r in results],
                "virtual": executor.now if simulated else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--populations", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    print(f"sync PBT, {args.iterations} iterations per trial, perturbation every {INTERVAL}, median of {repeats} "
          f"run(s); load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for simulated in (True, False):  # warm up: imports, first files
        run(4, INTERVAL, simulated)
    print(" | ".join(HEADER))
    for trials in args.populations:
        simulated = [run(trials, args.iterations, True) for _ in range(repeats)]
        bare = [run(trials, args.iterations, True, loggers=False) for _ in range(repeats)]
        peer = [run(trials, args.iterations, False) for _ in range(repeats)]
        median = {name: {key: statistics.median(r[key] for r in runs) for key in ("wall", "cpu")}
                  for name, runs in (("simulated", simulated), ("bare", bare), ("peer", peer))}
        first = simulated[0]
        same = all(r["scores"] == first["scores"] for r in simulated + bare + peer)
        print(" | ".join([str(trials), str(first["reports"]), str(first["exploits"]), f"{first['virtual']:.1f}",
                          f"{median['simulated']['wall']:.2f}", f"{median['simulated']['cpu']:.2f}",
                          f"{median['simulated']['wall'] / first['reports'] * 1e6:.0f}",
                          f"{median['bare']['wall']:.2f}", f"{median['bare']['cpu']:.2f}",
                          f"{median['peer']['wall']:.2f}", f"{median['peer']['wall'] / median['simulated']['wall']:.2f}",
                          "yes" if same else "no"]), flush=True)


if __name__ == "__main__":
    main()
