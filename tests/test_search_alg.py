"""TuneConfig(search_alg=BasicVariantGenerator(...)) with Ray's semantics; clear errors for every other searcher,
for trainables only Ray can run, and for Ray-only TuneConfig/RunConfig arguments."""

from __future__ import annotations

import pytest

from pbtlab import ConfigError, RunConfig, TuneConfig, Tuner, tune
from pbtlab.tune.search import BasicVariantGenerator
from pbtlab.tune.search.basic_variant import BasicVariantGenerator as FromBasicVariant

SPACE = {"a": tune.grid_search([1, 2]), "b": tune.randint(0, 1000)}


def report_once(config):
    tune.report({"score": 1.0})


def configs_of(search_alg, num_samples=4, seed=0, space=SPACE, **tune_kwargs):
    results = Tuner(report_once, param_space=space,
                    tune_config=TuneConfig(num_samples=num_samples, seed=seed, search_alg=search_alg, **tune_kwargs),
                    run_config=RunConfig(storage_path="results", verbose=0)).fit()
    return [r.config for r in results]


def test_default_generator_samples_what_pbtlab_samples_without_one():
    assert FromBasicVariant is BasicVariantGenerator
    assert configs_of(BasicVariantGenerator()) == configs_of(None)
    assert configs_of(BasicVariantGenerator(), seed=1) != configs_of(None, seed=0)


def test_points_to_evaluate_replace_samples_as_in_rays_docs():
    points = [{"a": 2, "b": 2}, {"a": 1}, {"b": 2}]
    configs = configs_of(BasicVariantGenerator(points_to_evaluate=points))
    # four samples -> six trials: the full point; a=1 with b sampled; both grid values with b=2; a full sample.
    assert [c["a"] for c in configs] == [2, 1, 1, 2, 1, 2]
    assert configs[0] == {"a": 2, "b": 2}
    assert configs[2]["b"] == configs[3]["b"] == 2
    assert all(0 <= c["b"] < 1000 for c in configs)
    assert len({configs[1]["b"], configs[4]["b"], configs[5]["b"]}) == 3  # sampled independently


def test_every_point_runs_even_beyond_num_samples():
    configs = configs_of(BasicVariantGenerator(points_to_evaluate=[{"a": 1, "b": 5}, {"a": 2, "b": 6}]),
                         num_samples=1)
    assert configs == [{"a": 1, "b": 5}, {"a": 2, "b": 6}]


def test_constant_grid_search_keeps_random_values_across_the_grid():
    constant = configs_of(BasicVariantGenerator(constant_grid_search=True))
    fresh = configs_of(BasicVariantGenerator(constant_grid_search=False))
    assert [c["a"] for c in constant] == [1, 2] * 4
    assert all(constant[i]["b"] == constant[i + 1]["b"] for i in range(0, 8, 2))
    assert any(fresh[i]["b"] != fresh[i + 1]["b"] for i in range(0, 8, 2))


def test_sample_from_is_computed_per_grid_point_under_constant_grid_search():
    space = {"a": tune.grid_search([1, 2]), "c": tune.sample_from(lambda spec: spec.config["a"] * 10)}
    assert configs_of(BasicVariantGenerator(constant_grid_search=True), num_samples=1, space=space) == [
        {"a": 1, "c": 10}, {"a": 2, "c": 20}]


def test_random_state_seeds_sampling_independently_of_tune_config_seed():
    first = configs_of(BasicVariantGenerator(random_state=7), seed=0)
    second = configs_of(BasicVariantGenerator(random_state=7), seed=123)
    assert first == second
    assert configs_of(BasicVariantGenerator(random_state=8), seed=0) != first


def test_max_concurrent_runs_one_trial_at_a_time():
    config = TuneConfig(search_alg=BasicVariantGenerator(max_concurrent=1), max_concurrent_trials=3)
    assert config.max_concurrent_trials == 1  # the smaller limit wins
    assert TuneConfig(search_alg=BasicVariantGenerator(max_concurrent=0), max_concurrent_trials=3
                      ).max_concurrent_trials == 3
    results = Tuner(report_once, param_space=SPACE,
                    tune_config=TuneConfig(seed=0, num_samples=2, search_alg=BasicVariantGenerator(max_concurrent=1)),
                    run_config=RunConfig(storage_path="results", verbose=0)).fit()
    kinds = [(e["event"], e["trial_id"]) for e in results.events if e["event"] in ("trial_start", "trial_complete")]
    # strictly alternating: each trial starts only after the previous one completed
    assert [k for k, _ in kinds] == ["trial_start", "trial_complete"] * 4
    assert all(kinds[i][1] == kinds[i + 1][1] for i in range(0, 8, 2))


def test_point_with_an_unknown_key_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"points_to_evaluate.*item 0 sets 'lr'.*not in param_space.*\['a', 'b'\]"):
        configs_of(BasicVariantGenerator(points_to_evaluate=[{"lr": 0.1}]))


def test_point_outside_its_domain_is_logged(caplog):
    with caplog.at_level("WARNING", logger="pbtlab"):
        configs = configs_of(BasicVariantGenerator(points_to_evaluate=[{"a": 3, "b": 5000}]), num_samples=1)
    assert configs == [{"a": 3, "b": 5000}]
    assert "a=3 is outside" in caplog.text and "b=5000 is outside" in caplog.text


@pytest.mark.parametrize("kwargs, argument", [
    ({"points_to_evaluate": {"a": 1}}, "points_to_evaluate"),
    ({"points_to_evaluate": [1]}, "points_to_evaluate"),
    ({"max_concurrent": -1}, "max_concurrent"),
    ({"max_concurrent": 1.5}, "max_concurrent"),
    ({"constant_grid_search": "yes"}, "constant_grid_search"),
    ({"random_state": "seed"}, "random_state"),
])
def test_bad_generator_arguments(kwargs, argument):
    with pytest.raises(ConfigError, match=argument):
        BasicVariantGenerator(**kwargs)


def _foreign(module: str, name: str, base: type = object) -> object:
    return type(name, (base,), {"__module__": module})()


@pytest.mark.parametrize("searcher, words", [
    (_foreign("ray.tune.search.optuna.optuna_search", "OptunaSearch"), ["Optuna", "OptunaSearch", "BasicVariant"]),
    (_foreign("ray.tune.search.hyperopt.hyperopt_search", "HyperOptSearch"), ["HyperOpt"]),
    (_foreign("ray.tune.search.concurrency_limiter", "ConcurrencyLimiter"), ["ConcurrencyLimiter",
                                                                             "max_concurrent_trials"]),
    (_foreign("ray.tune.search.repeater", "Repeater"), ["Repeater", "points_to_evaluate"]),
    (_foreign("ray.tune.search.basic_variant", "BasicVariantGenerator"), ["Ray's BasicVariantGenerator",
                                                                          "pbtlab.tune.search"]),
    (_foreign("my_searchers", "MySearcher"), ["MySearcher"]),
    ("optuna", ["'optuna'"]),
])
def test_other_searchers_are_rejected_naming_them(searcher, words):
    with pytest.raises(ConfigError) as info:
        TuneConfig(search_alg=searcher)
    assert "search_alg" in str(info.value) and "not supported" in str(info.value) or "use pbtlab's" in str(info.value)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("kwargs, words", [
    ({"storage_filesystem": object()}, ["storage_filesystem", "storage_path"]),
    ({"sync_config": object()}, ["sync_config", "storage_path"]),
    ({"progress_reporter": object()}, ["progress_reporter", "verbose"]),
    ({"local_dir": "/tmp/x"}, ["local_dir", "storage_path"]),
    ({"worker_runtime_env": {}}, ["worker_runtime_env"]),
    ({"logging_config": object()}, ["logging_config"]),
])
def test_ray_only_run_config_arguments_are_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        RunConfig(**kwargs)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_ray_only_tune_config_arguments_are_errors():
    with pytest.raises(ConfigError, match="chdir_to_trial_dir.*get_trial_dir"):
        TuneConfig(chdir_to_trial_dir=False)


def test_ray_schedulers_are_named():
    with pytest.raises(ConfigError, match="Ray's PopulationBasedTraining: import it from pbtlab.schedulers"):
        TuneConfig(scheduler=_foreign("ray.tune.schedulers.pbt", "PopulationBasedTraining"))
    with pytest.raises(ConfigError, match="Ray's AsyncHyperBandScheduler: import it from pbtlab.schedulers"):
        TuneConfig(scheduler=_foreign("ray.tune.schedulers.async_hyperband", "AsyncHyperBandScheduler"))
    with pytest.raises(ConfigError, match="Ray's HyperBandForBOHB is not supported"):
        TuneConfig(scheduler=_foreign("ray.tune.schedulers.hb_bohb", "HyperBandForBOHB"))
    with pytest.raises(ConfigError, match="Ray's PB2: import it from pbtlab.schedulers"):
        TuneConfig(scheduler=_foreign("ray.tune.schedulers.pb2", "PB2"))


def _ray_function():
    def inner(config):
        return None
    inner.__module__ = "ray.tune.trainable.util"
    return inner


@pytest.mark.parametrize("trainable, words", [
    ("PPO", ["'PPO'", "RLlib"]),
    (type("PPO", (), {"__module__": "ray.rllib.algorithms.ppo.ppo"}), ["RLlib", "PPO"]),
    (type("MyAlgo", (type("Algorithm", (), {"__module__": "ray.rllib.algorithms.algorithm"}),), {}), ["RLlib"]),
    (_foreign("ray.train.torch.torch_trainer", "TorchTrainer"), ["Ray Train", "TorchTrainer"]),
    (type("MyTrainable", (type("Trainable", (), {"__module__": "ray.tune.trainable.trainable"}),), {}),
     ["comes from Ray", "pbtlab.tune"]),
    (_ray_function(), ["ray.tune.trainable.util", "with_parameters"]),
])
def test_trainables_only_ray_can_run_are_errors_at_tuner(trainable, words):
    with pytest.raises(ConfigError) as info:
        Tuner(trainable)
    assert all(word in str(info.value) for word in words), str(info.value)


@pytest.mark.ray
def test_real_ray_objects_are_named():
    pytest.importorskip("ray.tune")
    from ray import tune as ray_tune
    from ray.tune.schedulers import PopulationBasedTraining as RayPBT
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator as RayBVG
    from ray.tune.search.searcher import Searcher

    with pytest.raises(ConfigError, match="Ray's BasicVariantGenerator"):
        TuneConfig(search_alg=RayBVG())
    with pytest.raises(ConfigError, match="ConcurrencyLimiter"):
        TuneConfig(search_alg=ConcurrencyLimiter(Searcher(metric="m", mode="max"), max_concurrent=2))
    with pytest.raises(ConfigError, match="Ray's PopulationBasedTraining"):
        TuneConfig(scheduler=RayPBT(hyperparam_mutations={"lr": [0.1, 0.2]}))
    with pytest.raises(ConfigError, match="comes from Ray"):
        Tuner(ray_tune.with_parameters(report_once, data=1))
    with pytest.raises(ConfigError, match="Ray's Float at model/lr.*pbtlab's functions"):
        Tuner(report_once, param_space={"model": {"lr": ray_tune.uniform(0.0, 1.0)}})
    with pytest.raises(ConfigError, match="grid_search.*at a.*tune.grid_search"):
        Tuner(report_once, param_space={"a": ray_tune.grid_search([1, 2])})
