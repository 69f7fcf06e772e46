"""Resources: ``tune.with_resources`` / ``tune.with_parameters``, the process executor's CPU and GPU pool
(never oversubscribed; CUDA_VISIBLE_DEVICES and thread counts per trial), Ray actor options, and one
Ray run (num_cpus=1 per trial) that checks the context, working directory and log files there."""

from __future__ import annotations

import json
import os
import sys

import pytest
import resource_trainables
from resource_trainables import (
    CASES,
    ParameterClass,
    case_resources,
    parameter_trainable,
    probe_trainable,
)

from pbtlab import tune
from pbtlab.engine.build import resumed_run
from pbtlab.errors import ConfigError
from pbtlab.executors.pool import ResourcePool
from pbtlab.executors.process import ProcessExecutor
from pbtlab.executors.ray import RayExecutor
from pbtlab.resources import Resources, resources_for
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.session import StartSpec
from pbtlab.tuner import Tuner


def read_text(path):
    with open(path) as handle:
        return handle.read()


def read_json(path):
    return json.loads(read_text(path))


def read_events(experiment_path):
    return [json.loads(line) for line in read_text(os.path.join(experiment_path, "events.jsonl")).splitlines()]


def probes(probe_dir):
    return {name[:-5]: read_json(os.path.join(probe_dir, name))
            for name in os.listdir(probe_dir) if name.endswith(".json")}


def fit(trainable, space, tmp_path, executor, name="run", **run):
    return Tuner(trainable, param_space=space,
                 tune_config=tune.TuneConfig(seed=0),
                 run_config=tune.RunConfig(name=name, storage_path=str(tmp_path / "runs"), verbose=0,
                                           executor=executor, **run)).fit()


# -- declaring resources -----------------------------------------------------------------------------------------
def test_resources_parse_and_clear_errors():
    def train(config):
        pass

    assert resources_for(tune.with_resources(train, {"CPU": 3, "GPU": 0.25}), {}) == Resources(3, 0.25)
    assert resources_for(tune.with_resources(train, lambda c: {"gpu": c["g"]}), {"g": 2}) == Resources(1, 2)
    assert resources_for(train, {}) is None
    with pytest.raises(ConfigError, match=r"'gpu' above 1 must be a whole number.*1.5"):
        tune.with_resources(train, {"gpu": 1.5})
    with pytest.raises(ConfigError, match=r"unknown resource 'memory'"):
        tune.with_resources(train, {"cpu": 1, "memory": 10})
    with pytest.raises(ConfigError, match=r"'cpu' must be a number >= 0, got -1"):
        tune.with_resources(train, {"cpu": -1})
    with pytest.raises(ConfigError, match=r"resources=function\) returned \[2\]"):
        resources_for(tune.with_resources(train, lambda c: [2]), {})
    with pytest.raises(ConfigError, match="needs a function trainable"):
        tune.with_resources(42, {"cpu": 1})
    placement = type("PlacementGroupFactory", (), {"__module__": "ray.tune.execution.placement_groups",
                                                   "__call__": lambda self: None})  # as Ray's: callable
    with pytest.raises(ConfigError, match="got Ray's PlacementGroupFactory"):
        tune.with_resources(train, placement())


def test_pool_shares_fractional_gpus_and_never_oversubscribes():
    pool = ResourcePool(num_cpus=3, gpu_ids=["0", "1"])
    assert pool.allocate("a", Resources(1, 0.5)).gpu_ids == ("0",)
    assert pool.allocate("b", Resources(1, 0.5)).gpu_ids == ("0",)  # shares device 0
    assert not pool.fits(Resources(1, 2))  # device 0 is full: only one whole device left
    assert pool.fits(Resources(1, 1)) and not pool.fits(Resources(2, 0))  # 1 CPU left
    assert pool.allocate("c", Resources(1, 1)).gpu_ids == ("1",)
    assert not pool.fits(Resources(0.5, 0))
    pool.free("a")
    assert pool.fits(Resources(1, 0.5), prefer=("0",)) and not pool.fits(Resources(1, 0.5), prefer=("1",))
    assert pool.capacity_error(Resources(1, 3)) == "3 GPUs, but the executor has GPUs ['0', '1']"
    assert ResourcePool(2).capacity_error(Resources(4, 0)) == "4 CPUs, but the executor has 2"


# -- with_parameters -----------------------------------------------------------------------------------------------
def test_with_parameters_passes_the_same_objects_through_pbt_restarts(tmp_path):
    data = list(range(1000))
    trainable = tune.with_parameters(parameter_trainable, data=data, tag="big")
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, synch=True,
                                  hyperparam_mutations={"rate": [0.5, 1.0, 2.0]}, quantile_fraction=0.5)
    results = Tuner(trainable, param_space={"rate": tune.grid_search([0.5, 2.0])},
                    tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=pbt, seed=0),
                    run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0, executor="process")).fit()
    events = read_events(results.experiment_path)
    assert any(e["event"] == "trial_start" and e["reason"] == "exploit" for e in events)
    ids_per_worker: dict[int, set[int]] = {}
    for result in results:
        rows = result.metrics_dataframe
        assert set(rows["data_sum"]) == {sum(data)} and set(rows["tag"]) == {"big"}
        for pid, data_id in zip(rows["pid"], rows["data_id"]):
            ids_per_worker.setdefault(pid, set()).add(data_id)
    assert all(len(ids) == 1 for ids in ids_per_worker.values())  # one object per worker, across restarts
    assert results.experiment_path.endswith(os.path.basename(results.experiment_path))
    assert os.path.basename(results.experiment_path).startswith("parameter_trainable")  # its own name kept


def test_with_parameters_in_process_shares_the_callers_object_and_class_setup_gets_them(tmp_path):
    data = [1, 2, 3]
    results = fit(tune.with_parameters(parameter_trainable, data=data, tag="x"), {"rate": 1.0}, tmp_path,
                  "inprocess", stop={"training_iteration": 2})
    assert set(results[0].metrics_dataframe["data_id"]) == {id(data)}
    classy = tune.with_resources(tune.with_parameters(ParameterClass, data=data, offset=10), {"cpu": 1})
    assert classy.__name__ == "ParameterClass" and issubclass(classy, ParameterClass)
    results = fit(classy, {}, tmp_path, "inprocess", name="classy")
    assert results[0].metrics["total"] == 16.0
    with pytest.raises(ConfigError, match="got no parameters"):
        tune.with_parameters(parameter_trainable)


# -- recorded and resumed ------------------------------------------------------------------------------------------
def test_resources_are_recorded_and_a_resume_keeps_them(tmp_path):
    trainable = tune.with_resources(probe_trainable, case_resources)
    space = {"case": tune.grid_search([0, 2]), "probe_dir": str(tmp_path / "probe"), "work_s": 0.0}
    results = fit(trainable, space, tmp_path, "inprocess")
    experiment = read_json(os.path.join(results.experiment_path, "experiment.json"))
    assert sorted(experiment["trial_resources"].values(), key=str) == [{"cpu": 1.0, "gpu": 0.5},
                                                                      {"cpu": 2.0, "gpu": 1.0}]
    controller = resumed_run(results.experiment_path, probe_trainable)  # the plain function: recorded ones
    assert controller.resources == {tid: Resources(**r) for tid, r in experiment["trial_resources"].items()}
    seen = probes(tmp_path / "probe")
    assert sorted((s["cpu"], s["gpu"], s["required"]["GPU"]) for s in seen.values()) == [(1, 0.5, 0.5), (2, 1, 1)]


# -- the process executor's pool -------------------------------------------------------------------------------------
def test_process_trials_see_exactly_the_gpus_and_threads_they_were_given(tmp_path):
    executor = ProcessExecutor(num_cpus=5, gpu_ids=["0", "1"])
    space = {"case": tune.grid_search(list(range(len(CASES)))), "probe_dir": str(tmp_path / "probe"),
             "work_s": 0.0}
    fit(tune.with_resources(probe_trainable, case_resources), space, tmp_path, executor)
    seen = sorted(probes(tmp_path / "probe").values(), key=lambda s: s["trial_id"])
    assert [s["gpu_ids"] for s in seen] == [["0"], ["0"], ["1"], []]  # in start order: 0.5 + 0.5 share "0"
    for s, (cpu, gpu) in zip(seen, CASES):
        assert s["env"]["CUDA_VISIBLE_DEVICES"] == ",".join(s["gpu_ids"])
        assert s["env"]["OMP_NUM_THREADS"] == s["env"]["MKL_NUM_THREADS"] == s["env"]["OPENBLAS_NUM_THREADS"] \
            == str(cpu)
        assert (s["cpu"], s["gpu"]) == (cpu, gpu)


def test_process_runs_only_what_fits_and_all_trials_complete(tmp_path):
    executor = ProcessExecutor(num_cpus=3, gpu_ids=["0"])  # GPU-bound: two 0.5-GPU trials at once
    space = {"i": tune.grid_search(list(range(5))), "probe_dir": str(tmp_path / "probe"), "work_s": 0.3}
    results = fit(tune.with_resources(probe_trainable, {"cpu": 1, "gpu": 0.5}), space, tmp_path, executor)
    assert [r.status for r in results] == ["TERMINATED"] * 5
    seen = probes(tmp_path / "probe")
    assert len(seen) == 5 and max(s["at_once"] for s in seen.values()) <= 2
    assert {s["env"]["CUDA_VISIBLE_DEVICES"] for s in seen.values()} == {"0"}
    spans = sorted((s["started"], s["finished"]) for s in seen.values())
    overlap = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert overlap <= 2


def test_a_trial_bigger_than_the_machine_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"asks for 8 CPUs, but the executor has 2"):
        fit(tune.with_resources(probe_trainable, {"cpu": 8}), {"probe_dir": str(tmp_path)}, tmp_path,
            ProcessExecutor(num_cpus=2, gpu_ids=[]))
    with pytest.raises(ConfigError, match=r"gpu_ids=\.\.\.\) must be a list of distinct"):
        ProcessExecutor(gpu_ids="0,1")


def test_legacy_run_passes_resources_per_trial_and_log_to_file(tmp_path):
    analysis = tune.run(probe_trainable, config={"probe_dir": str(tmp_path / "probe"), "work_s": 0.0},
                        resources_per_trial={"cpu": 2, "gpu": 0}, log_to_file=True, storage_path=str(tmp_path),
                        name="legacy", verbose=0)
    trial_dir = analysis.trials[0].path
    seen = list(probes(tmp_path / "probe").values())
    assert (seen[0]["cpu"], seen[0]["gpu"]) == (2.0, 0.0)
    assert read_text(os.path.join(trial_dir, "stdout")) == f"stdout of {seen[0]['trial_id']}\n"
    experiment = read_json(os.path.join(analysis.experiment_path, "experiment.json"))
    assert experiment["log_to_file"] is True and list(experiment["trial_resources"].values()) == [
        {"cpu": 2.0, "gpu": 0.0}]


# -- Ray -----------------------------------------------------------------------------------------------------------
def test_ray_actor_options_carry_the_trials_resources(tmp_path):
    spec = StartSpec("t0", {}, str(tmp_path), None, 0, resources=Resources(2, 0.5))
    assert RayExecutor().actor_options_for(spec) == {"scheduling_strategy": "SPREAD", "num_cpus": 2.0,
                                                     "num_gpus": 0.5}
    assert RayExecutor(actor_options={"num_gpus": 1}).actor_options_for(spec)["num_gpus"] == 1  # user's wins
    assert RayExecutor().actor_options_for(StartSpec("t1", {}, str(tmp_path), None, 0)) == {
        "scheduling_strategy": "SPREAD"}


@pytest.mark.ray
def test_ray_run_with_one_cpu_per_trial(tmp_path, ray_runtime):
    space = {"i": tune.grid_search([0, 1, 2]), "probe_dir": str(tmp_path / "probe"), "work_s": 0.2,
             "relative_write": True, "raw_write": True}
    results = fit(tune.with_resources(probe_trainable, {"cpu": 1}), space, tmp_path, "ray",
                  log_to_file=("out.txt", "err.txt"))
    assert [r.status for r in results] == ["TERMINATED"] * 3
    seen = probes(tmp_path / "probe")
    assert max(s["at_once"] for s in seen.values()) <= 2
    for result in results:
        s = seen[result.metrics["trial_id"]]
        assert (s["cpu"], s["gpu"], s["trial_dir"], s["cwd"]) == (1.0, 0.0, result.path, result.path)
        assert s["gpu_ids"] == []  # what Ray gave the actor (no GPU here)
        assert s["trial_name"] == f"probe_trainable_{s['trial_id']}" and s["experiment_name"] == "run"
        assert read_text(os.path.join(result.path, "my_model", "weights.txt")) == s["trial_id"]
        assert read_text(os.path.join(result.path, "out.txt")) == \
            f"stdout of {s['trial_id']}\nfd1 of {s['trial_id']}\n"
        assert read_text(os.path.join(result.path, "err.txt")) == f"stderr of {s['trial_id']}\n"
    assert sys.modules["resource_trainables"] is resource_trainables


def test_synchronous_pbt_pauses_give_gpus_back_and_workers_keep_their_devices(tmp_path):
    from resource_trainables import gpu_pbt_trainable

    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, synch=True,
                                  hyperparam_mutations={"rate": [0.5, 1.0, 2.0]}, quantile_fraction=0.25)
    space = {"rate": tune.grid_search([0.5, 1.0, 2.0, 0.5]), "probe_dir": str(tmp_path / "probe")}
    results = Tuner(tune.with_resources(gpu_pbt_trainable, {"cpu": 1, "gpu": 1}), param_space=space,
                    tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=pbt, seed=0),
                    run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0,
                                              executor=ProcessExecutor(num_cpus=4, gpu_ids=["0", "1"]))).fit()
    assert [r.status for r in results] == ["TERMINATED"] * 4
    events = read_events(results.experiment_path)
    assert any(e["event"] == "exploit" for e in events)
    devices_per_worker: dict[int, set[str]] = {}
    for result in results:
        rows = result.metrics_dataframe
        assert max(rows["at_once"]) <= 2
        for pid, cuda in zip(rows["pid"], rows["cuda"]):
            devices_per_worker.setdefault(pid, set()).add(str(cuda))
    assert all(len(d) == 1 and d <= {"0", "1"} for d in devices_per_worker.values())


def test_spawned_workers_rebuild_parameterized_trainables(tmp_path):
    from resource_trainables import ParameterClass

    classy = tune.with_resources(tune.with_parameters(ParameterClass, data=[1, 2], offset=1), {"cpu": 1})
    function = tune.with_parameters(parameter_trainable, data=[5], tag="spawned")
    executor = ProcessExecutor(start_method="spawn", num_cpus=2, gpu_ids=[])
    results = fit(tune.with_resources(function, {"cpu": 1}), {"rate": 1.0}, tmp_path, executor,
                  stop={"training_iteration": 1})
    assert (results[0].metrics["data_sum"], results[0].metrics["tag"]) == (5, "spawned")
    results = fit(classy, {}, tmp_path, ProcessExecutor(start_method="spawn"), name="classy")
    assert results[0].metrics["total"] == 4.0
