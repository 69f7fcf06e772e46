"""Real Ray Tune runs for tests/test_ray_runs.py: the tutorial's toy problem on Ray, tiny budgets.

Each ``run_*`` function runs Ray Tune itself (``ray.tune.Tuner``) and returns Ray's own ``ResultGrid``.
The trainables write JSON checkpoints (nothing to unpickle). Ray must be initialised by the caller.

    >>> import ray                                                       # doctest: +SKIP
    >>> ray.init(num_cpus=2); grid = run_sync_function(tmp_path)          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

import numpy as np

THETA_START = (0.9, 0.9)


def _step(theta: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """One gradient-ascent step on the tutorial's surrogate Qhat(theta | h)."""
    h = np.array([config["h0"], config["h1"]], dtype=float)
    grad = -2 * h * theta
    grad[0] *= 3 / 4
    return theta + config["lr"] * grad


def _q(theta: np.ndarray) -> float:
    return float(1.2 - (3 / 4 * theta[0] ** 2 + theta[1] ** 2))


def toy_function(config: dict[str, Any]) -> None:
    """The tutorial's train_func on Ray: checkpoints every ``checkpoint_interval`` steps (JSON)."""
    from ray import tune

    theta = np.array(THETA_START)
    step = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as handle:
            saved = json.load(handle)
        theta, step = np.array(saved["theta"]), saved["step"] + 1
    while True:
        theta = _step(theta, config)
        result = {"Q": _q(theta), "theta0": float(theta[0]), "theta1": float(theta[1]),
                  "h0": config["h0"], "h1": config["h1"], "train_step": step}
        if config.get("fail_at_step") == step and config.get("fail_trial") in tune.get_context().get_trial_id():
            raise RuntimeError(f"planned failure at step {step}")
        with tempfile.TemporaryDirectory() as folder:
            saved_checkpoint = None
            if step % config.get("checkpoint_interval", 1) == 0:
                with open(os.path.join(folder, "state.json"), "w") as handle:
                    json.dump({"theta": theta.tolist(), "step": step}, handle)
                saved_checkpoint = tune.Checkpoint.from_directory(folder)
            tune.report(result, checkpoint=saved_checkpoint)
        step += 1


def toy_class() -> Any:
    """The same toy problem as a class trainable (``step`` / ``save_checkpoint`` / ``load_checkpoint``)."""
    from ray import tune

    class ToyTrainable(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            self.theta = np.array(THETA_START)

        def step(self) -> dict[str, Any]:
            self.theta = _step(self.theta, self.config)
            if self.config.get("fail_at_step") == self.iteration + 1 and \
                    str(self.config.get("fail_trial")) in self.trial_id:
                raise RuntimeError(f"planned failure at iteration {self.iteration + 1}")
            return {"Q": _q(self.theta), "theta0": float(self.theta[0]), "theta1": float(self.theta[1]),
                    "h0": self.config["h0"], "h1": self.config["h1"]}

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, "state.json"), "w") as handle:
                json.dump({"theta": self.theta.tolist()}, handle)

        def load_checkpoint(self, checkpoint_dir: str) -> None:
            with open(os.path.join(checkpoint_dir, "state.json")) as handle:
                self.theta = np.array(json.load(handle)["theta"])

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            return True

    return ToyTrainable


def _pbt(synch: bool, interval: int) -> Any:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(
        time_attr="training_iteration", perturbation_interval=interval, metric="Q", mode="max",
        quantile_fraction=0.5, resample_probability=0.5,
        hyperparam_mutations={"lr": tune.qloguniform(5e-3, 1e-1, 5e-4), "h0": tune.uniform(0.0, 1.0),
                              "h1": tune.uniform(0.0, 1.0)},
        synch=synch)


def _tuner(trainable: Any, param_space: dict[str, Any], storage: str, name: str, synch: bool, iterations: int,
           interval: int = 4, num_to_keep: int | None = None, checkpoint_frequency: int = 0,
           callbacks: list[Any] | None = None) -> Any:
    from ray import tune

    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(scheduler=_pbt(synch, interval), num_samples=1, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, stop={"training_iteration": iterations}, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=num_to_keep, checkpoint_frequency=checkpoint_frequency),
            callbacks=callbacks))


def tutorial_space(grid: list[float], interval: int = 4) -> dict[str, Any]:
    from ray import tune

    return {"lr": 0.05, "h0": tune.grid_search(grid), "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
            "checkpoint_interval": interval}


def run_sync_function(storage: str, iterations: int = 12, num_to_keep: int | None = None) -> Any:
    """The tutorial's 2-trial synchronous PBT (function trainable), ``iterations`` steps."""
    return _tuner(toy_function, tutorial_space([0.0, 1.0]), storage, "sync_function", True, iterations,
                  num_to_keep=num_to_keep).fit()


def run_async_class(storage: str, iterations: int = 10, fail_trial: str | None = None, fail_at_step: int = 7) -> Any:
    """Asynchronous PBT over 3 class trainables, checkpointing every 2 iterations; one may fail."""
    space = tutorial_space([0.0, 1.0, 0.5], interval=2)
    space.update({"fail_trial": fail_trial, "fail_at_step": fail_at_step})
    return _tuner(toy_class(), space, storage, "async_class", False, iterations, interval=2,
                  checkpoint_frequency=2).fit()


def run_interrupted_then_restored(storage: str, stop_after_results: int = 10, iterations: int = 12) -> tuple[Any, str]:
    """Asynchronous PBT stopped by an exception in a callback, then continued with ``Tuner.restore``."""
    from ray import tune

    class Interrupt(tune.Callback):
        # Tuner.restore brings this callback back from tuner.pkl: a marker file makes it fire only once.
        def __init__(self, marker: str) -> None:
            self.marker = marker
            self.seen = 0

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            self.seen += 1
            if self.seen == stop_after_results and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                raise RuntimeError("planned interruption of the driver")

    tuner = _tuner(toy_function, tutorial_space([0.0, 1.0], interval=2), storage, "restored", False, iterations,
                   interval=2, callbacks=[Interrupt(os.path.join(storage, "interrupted.marker"))])
    with contextlib.suppress(BaseException):  # the planned interruption, whichever way Ray re-raises it
        tuner.fit()
    path = os.path.join(storage, "restored")
    restored = tune.Tuner.restore(path, trainable=toy_function, resume_unfinished=True)
    return restored.fit(), path


def trim_for_fixture(source: str, target: str) -> None:
    """Copy a Ray experiment directory as a small committed fixture.

    Dropped: TensorBoard files and Ray's pickles (``params.pkl``, ``error.pkl``); in the experiment state,
    the hex-encoded cloudpickle values become "" (the reader never looks at them). Everything else is
    byte for byte what Ray wrote.
    """
    import shutil

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("_type") == "CLOUDPICKLE_FALLBACK":
                return {"_type": "CLOUDPICKLE_FALLBACK", "value": ""}
            return {k: blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        if isinstance(value, str) and len(value) > 6 and value.startswith("8005"):
            return ""
        return value

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("events.out.tfevents*", "params.pkl", "error.pkl",
                                                                  "basic-variant-state-*"))
    for name in os.listdir(target):
        if name.startswith("experiment_state-"):
            path = os.path.join(target, name)
            with open(path) as handle:
                state = json.load(handle)
            state["runner_data"] = blank(state["runner_data"])
            state["trial_data"] = [[json.dumps(blank(json.loads(part)), indent=2) for part in entry]
                                   for entry in state["trial_data"]]
            with open(path, "w") as handle:
                json.dump(state, handle)
