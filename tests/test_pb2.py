"""PB2: seeded GP-UCB explore decisions, their records, validation, describe/resume.

The workload is the dynamics of Ray's PB2 example problem (``pbt_function``: accuracy grows fastest when
lr follows a triangle wave of the accuracy), written here with a per-trial seeded generator.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
import pytest

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.schedulers import PB2
from pbtlab.schedulers.pb2 import _Observation, time_varying_kernel
from pbtlab.tuner import Tuner

pytest.importorskip("sklearn")


def triangle_lr(config: dict[str, Any]) -> None:
    """Accuracy rises fastest when lr is near a triangle wave of the accuracy (peak 0.01 at accuracy 100)."""
    lr = config["lr"]
    accuracy, step = 0.0, 1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory, open(os.path.join(directory, "state.json")) as f:
            saved = json.load(f)
        accuracy, step = saved["accuracy"], saved["step"] + 1
    while True:
        rng = np.random.default_rng([config["seed"], step])
        best_lr = 0.01 * accuracy / 100 if accuracy < 100 else 0.01 - 0.01 * (accuracy - 100) / 100
        best_lr = min(0.01, max(0.001, best_lr))
        ratio = max(lr, best_lr) / min(lr, best_lr)
        if ratio < 3:
            accuracy += rng.random() / ratio
        elif lr > best_lr:
            accuracy -= (ratio - 3) * rng.random()
        accuracy = max(0.0, accuracy + 2 * rng.normal())
        with tempfile.TemporaryDirectory() as directory:
            saved_checkpoint = None
            if step % 5 == 0:
                with open(os.path.join(directory, "state.json"), "w") as f:
                    json.dump({"accuracy": accuracy, "step": step}, f)
                saved_checkpoint = tune.Checkpoint.from_directory(directory)
            tune.report({"mean_accuracy": accuracy}, checkpoint=saved_checkpoint)
        step += 1


def make_pb2(**overrides: Any) -> PB2:
    settings: dict[str, Any] = {"time_attr": "training_iteration", "perturbation_interval": 5,
                                "hyperparam_bounds": {"lr": [0.0001, 0.02]}, "num_candidates": 200}
    settings.update(overrides)
    return PB2(**settings)


def run_pb2(path: Any, seed: int = 0, scheduler: PB2 | None = None, iterations: int = 30) -> Any:
    return Tuner(
        triangle_lr, param_space={"lr": 0.0001, "seed": tune.randint(0, 10**6)},
        tune_config=TuneConfig(num_samples=4, metric="mean_accuracy", mode="max", seed=seed,
                               scheduler=scheduler or make_pb2()),
        run_config=RunConfig(storage_path=str(path), name="pb2", stop={"training_iteration": iterations},
                             verbose=0),
    ).fit()


def events(results: Any) -> list[dict[str, Any]]:
    with open(os.path.join(results.experiment_path, "events.jsonl")) as f:
        return [json.loads(line) for line in f]


def decisions(results: Any) -> list[tuple[Any, ...]]:
    return [(e["trial_id"], e["donor"], e["target_iteration"], tuple((c["op"], c["new"]) for c in e["changes"]))
            for e in events(results) if e["event"] == "explore"]


def test_pb2_decisions_are_seeded_recorded_and_inside_bounds(tmp_path):
    first = decisions(run_pb2(tmp_path / "a", seed=0))
    again = decisions(run_pb2(tmp_path / "b", seed=0))
    assert first == again  # same seed, same decisions, bit for bit
    chosen = [d for d in first if d[3][0][0].startswith("pb2 ucb=")]
    assert len(chosen) >= 2
    for _, donor, _, ((op, new),) in chosen:
        assert donor is not None
        assert 0.0001 <= new <= 0.02
        assert "(200 candidates, " in op and " points)" in op
    other = decisions(run_pb2(tmp_path / "c", seed=1))
    assert other != first


def test_pb2_events_and_experiment_record_name_pb2(tmp_path):
    results = run_pb2(tmp_path, iterations=20)
    log = events(results)
    assert log[0]["scheduler"]["type"] == "PB2"
    assert log[0]["scheduler"]["hyperparam_bounds"] == {"lr": [0.0001, 0.02]}
    exploits = [e for e in log if e["event"] == "exploit"]
    explores = [e for e in log if e["event"] == "explore"]
    assert [e["trial_id"] for e in exploits] == [e["trial_id"] for e in explores]
    assert log[-1]["scheduler"].startswith("PB2: ")


def _observe(pb2: PB2, trial_id: str, time: float, lr: float, score: float) -> None:
    pb2._observations.append(_Observation(trial_id, time, (lr,), score))


class _View:
    def __init__(self, trial_id: str, config: dict[str, Any]) -> None:
        self.trial_id, self.config, self.iteration = trial_id, config, 10
        self.is_finished = self.is_waiting = False
        self.latest_checkpoint = None


def _scheduler_with_data(seed: int) -> PB2:
    pb2 = make_pb2(metric="acc", mode="max")
    pb2.set_rng(np.random.default_rng(seed))
    # reward grows at 3 - 300 * |lr - 0.01| per unit of time: fastest at lr = 0.01
    for trial_id, lr in (("a", 0.001), ("b", 0.01), ("c", 0.019), ("d", 0.005), ("e", 0.015)):
        pb2.on_trial_add(trial_id, {"lr": lr}, trial_id)
        for time in (5.0, 10.0, 15.0, 20.0):
            _observe(pb2, trial_id, time, lr, (3 - 300 * abs(lr - 0.01)) * time)
    return pb2


def test_pb2_picks_the_best_region_when_the_data_says_so():
    pb2 = _scheduler_with_data(0)
    new_config, changes = pb2.explore(_View("a", {"lr": 0.001}), _View("b", {"lr": 0.01}), {"lr": 0.01})
    (change,) = changes
    assert change.param == "lr" and change.old == 0.01 and change.op.startswith("pb2 ucb=")
    assert 0.005 < new_config["lr"] < 0.016  # near b's lr, which grew fastest
    # the target's next reward change is measured from the donor's point with the new value
    assert pb2.observations()[-1] == ("a", 20.0, (new_config["lr"],), 60.0)


def test_pb2_keeps_the_config_when_the_donor_has_no_measured_change():
    pb2 = make_pb2(metric="acc", mode="max")
    pb2.set_rng(np.random.default_rng(0))
    config, changes = pb2.explore(_View("a", {"lr": 0.001}), _View("b", {"lr": 0.01}), {"lr": 0.01})
    assert config == {"lr": 0.01}
    assert [c.op for c in changes] == ["pb2: kept (no reward change measured for the donor yet)"]


def test_pb2_state_round_trip_gives_the_same_next_decision():
    pb2 = _scheduler_with_data(3)
    rebuilt = PB2.from_description(json.loads(json.dumps(pb2.describe())))
    rebuilt.set_rng(np.random.default_rng(99))
    rebuilt.load_state_dict(json.loads(json.dumps(pb2.state_dict())))
    assert type(rebuilt) is PB2 and rebuilt.observations() == pb2.observations()
    args = (_View("a", {"lr": 0.001}), _View("b", {"lr": 0.01}), {"lr": 0.01})
    assert rebuilt.explore(*args) == pb2.explore(*args)


def test_pb2_fills_missing_values_and_nested_bounds():
    pb2 = PB2(metric="m", mode="min", hyperparam_bounds={"opt": {"lr": [0.1, 0.2]}, "wd": [1, 2]})
    pb2.set_rng(np.random.default_rng(0))
    config = pb2.on_trial_add("t", {"wd": 1}, "t")
    assert config["wd"] == 1 and 0.1 <= config["opt"]["lr"] < 0.2


@pytest.mark.parametrize("kwargs, message", [
    ({}, "PB2 needs hyperparam_bounds"),
    ({"hyperparam_bounds": {"lr": [0.1]}}, r"hyperparam_bounds\['lr'\] must be a \[low, high\] pair"),
    ({"hyperparam_bounds": {"lr": [0.2, 0.1]}}, "must have low < high"),
    ({"hyperparam_bounds": {"lr": ["a", 0.1]}}, "must be a finite number"),
    ({"hyperparam_bounds": {"lr": [0.1, 0.2]}, "num_candidates": 0}, "num_candidates must be a positive int"),
    ({"hyperparam_bounds": {"lr": [0.1, 0.2]}, "quantile_fraction": 0.7}, "quantile_fraction must be in"),
])
def test_pb2_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PB2(**kwargs)


def test_time_varying_kernel_forgets_with_time_and_distance():
    kernel = time_varying_kernel(length_scale=0.5, epsilon=0.36)
    points = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 0.5]])
    K = kernel(points)
    assert K[0, 1] == pytest.approx(0.64)  # (1 - 0.36) ** (2 / 2)
    assert K[0, 2] == pytest.approx(np.exp(-0.5))  # exp(-0.25 / (2 * 0.25))
    assert np.allclose(np.diag(K), 1.0) and np.allclose(kernel.diag(points), 1.0)


def test_a_pb2_run_resumes_as_pb2_with_its_gp_data(tmp_path):
    results = run_pb2(tmp_path, iterations=20)
    path = results.experiment_path
    with open(os.path.join(path, "state.json")) as f:
        state = json.load(f)
    saved_points = len(state["scheduler"]["pb2"]["observations"])
    assert saved_points >= 12  # 4 trials checked at 5, 10, 15 (and 20 if saved after it)
    for trial in state["trials"]:  # rewind to "every trial still running", as after a crash; continue to 30
        trial["status"] = "RUNNING"
        state["scheduler"]["members"][trial["trial_id"]]["finished"] = False
    with open(os.path.join(path, "state.json"), "w") as f:
        json.dump(state, f)
    again = Tuner.restore(path, triangle_lr, run_config=RunConfig(stop={"training_iteration": 30}, verbose=0)).fit()
    log = events(again)
    resume_at = next(i for i, e in enumerate(log) if e["event"] == "experiment_resume")
    later = [e for e in log[resume_at:] if e["event"] == "explore"]
    assert later, "the resumed PB2 explored again"
    points = [int(c["op"].split(", ")[1].split()[0]) for e in later for c in e["changes"] if "ucb=" in c["op"]]
    assert points and min(points) > 6  # the GP kept the data from before the resume
    assert all(r.metrics["training_iteration"] == 30 for r in again)
