"""Trainables of the resources / working-directory / context tests, in a module Ray and spawned workers import.

Each reports what the trial saw: its context, environment, working directory and process; the
concurrency probe also keeps a ``running/`` folder of marker files, so a test can tell how many trials
ran at the same moment.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from pbtlab import tune

#: trial cases for the GPU-environment test: (cpu, gpu) per ``config["case"]``
CASES = [(1, 0.5), (1, 0.5), (2, 1), (1, 0)]


def case_resources(config):
    cpu, gpu = CASES[config["case"]]
    return {"cpu": cpu, "gpu": gpu}


def seen_by_trial(relative_write: bool) -> dict:
    """What the running trial sees, as a JSON-able dict."""
    context = tune.get_context()
    resources = context.get_trial_resources()
    seen = {
        "trial_id": context.get_trial_id(), "trial_name": context.get_trial_name(),
        "trial_dir": context.get_trial_dir(), "experiment_name": context.get_experiment_name(),
        "cpu": resources.cpu, "gpu": resources.gpu, "gpu_ids": context.get_trial_gpu_ids(),
        "required": resources.required_resources,
        "cwd": os.getcwd(), "pid": os.getpid(),
        "env": {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                               "OPENBLAS_NUM_THREADS")},
    }
    if relative_write:  # a relative path: per trial on the process and Ray executors
        os.makedirs("my_model", exist_ok=True)
        with open(os.path.join("my_model", "weights.txt"), "w") as handle:
            handle.write(context.get_trial_id())
    return seen


def probe_trainable(config):
    """Reports what it saw once, after a while of 'work' during which it is counted as running."""
    seen = seen_by_trial(config.get("relative_write", False))
    running = os.path.join(config["probe_dir"], "running")
    os.makedirs(running, exist_ok=True)
    marker = os.path.join(running, seen["trial_id"])
    open(marker, "w").close()
    at_once = len(os.listdir(running))
    started = time.time()
    time.sleep(config.get("work_s", 0.3))
    at_once = max(at_once, len(os.listdir(running)))
    finished = time.time()
    os.remove(marker)
    with open(os.path.join(config["probe_dir"], f"{seen['trial_id']}.json"), "w") as handle:
        json.dump({**seen, "at_once": at_once, "started": started, "finished": finished}, handle)
    print(f"stdout of {seen['trial_id']}")
    print(f"stderr of {seen['trial_id']}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if config.get("raw_write"):
        os.write(1, f"fd1 of {seen['trial_id']}\n".encode())
    tune.report({"at_once": at_once, "gpu_ids": ",".join(seen["gpu_ids"])})


def parameter_trainable(config, data, tag):
    """Counts up by ``rate``, checkpointing every step; reports the identity of its ``data`` parameter."""
    step, score = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with open(os.path.join(checkpoint.path, "state.json")) as handle:
            step, score = json.load(handle)
    while step < 6:
        step += 1
        score += config["rate"]
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as handle:
                json.dump([step, score], handle)
            tune.report({"score": score, "data_id": id(data), "data_sum": sum(data), "tag": tag,
                         "pid": os.getpid()}, checkpoint=tune.Checkpoint.from_directory(tmp))


class ParameterClass(tune.Trainable):
    """A class trainable that gets ``with_parameters`` objects in ``setup``."""

    def setup(self, config, data, offset=0):
        self.total = float(sum(data) + offset)

    def step(self):
        return {"total": self.total, "done": True}


def gpu_pbt_trainable(config):
    """Counts up by ``rate`` with a checkpoint at every step; each step is 'work' counted in ``running/``,
    and each report says which GPUs the process sees."""
    step, score = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with open(os.path.join(checkpoint.path, "state.json")) as handle:
            step, score = json.load(handle)
    running = os.path.join(config["probe_dir"], "running")
    os.makedirs(running, exist_ok=True)
    marker = os.path.join(running, tune.get_context().get_trial_id())
    while step < 6:
        step += 1
        score += config["rate"]
        open(marker, "w").close()
        at_once = len(os.listdir(running))
        time.sleep(0.05)
        at_once = max(at_once, len(os.listdir(running)))
        os.remove(marker)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as handle:
                json.dump([step, score], handle)
            tune.report({"score": score, "at_once": at_once, "pid": os.getpid(),
                         "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")},
                        checkpoint=tune.Checkpoint.from_directory(tmp))
