"""Bad input gets a clear error, before any trial starts where possible.

Every error is a PbtlabError (and the matching builtin) and says what it got and what is allowed.
"""

from __future__ import annotations

import os

import pytest

import pbtlab
from pbtlab import tune, Tuner, TuneConfig
from pbtlab.errors import ConfigError, ExperimentError, PbtlabError, ReportError, TrialError
from pbtlab.executors.simulated import SimulatedExecutor
from pbtlab.schedulers import PopulationBasedTraining

MUT = {"lr": tune.uniform(0.0, 1.0)}


def raises(exc_type, fn, *fragments):
    """Call fn; it must raise exc_type (a PbtlabError) whose message contains every fragment."""
    with pytest.raises(exc_type) as info:
        fn()
    assert isinstance(info.value, PbtlabError)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return info.value


def test_exception_family():
    assert issubclass(ConfigError, PbtlabError) and issubclass(ConfigError, ValueError)
    assert issubclass(ReportError, PbtlabError) and issubclass(ReportError, TypeError)
    assert issubclass(TrialError, PbtlabError) and issubclass(TrialError, RuntimeError)
    assert issubclass(ExperimentError, PbtlabError) and issubclass(ExperimentError, RuntimeError)
    assert pbtlab.PbtlabError is PbtlabError


# -- PopulationBasedTraining arguments (raised when it is constructed) ---------------------------------------
@pytest.mark.parametrize("kwargs,fragments", [
    (dict(mode="maximum"), ["mode must be 'min' or 'max', got 'maximum'"]),
    (dict(quantile_fraction=0.7), ["quantile_fraction must be in [0, 0.5], got 0.7"]),
    (dict(quantile_fraction=-0.1), ["quantile_fraction must be in [0, 0.5], got -0.1"]),
    (dict(quantile_fraction="0.25"), ["quantile_fraction must be a finite number, got '0.25' (str)"]),
    (dict(perturbation_interval=0), ["perturbation_interval must be in (0, inf], got 0"]),
    (dict(perturbation_interval=-4), ["perturbation_interval must be in (0, inf], got -4"]),
    (dict(perturbation_interval=float("nan")), ["perturbation_interval must be a finite number, got nan"]),
    (dict(burn_in_period=-1), ["burn_in_period must be in [0, inf], got -1"]),
    (dict(resample_probability=1.5), ["resample_probability must be in [0, 1], got 1.5"]),
    (dict(perturbation_factors=()), ["perturbation_factors must be a non-empty sequence of numbers, got ()"]),
    (dict(perturbation_factors="12"), ["perturbation_factors must be a non-empty sequence", "'12' (str)"]),
    (dict(perturbation_factors=(1.2, "x")), ["perturbation_factors[1] must be a finite number, got 'x' (str)"]),
    (dict(custom_explore_fn=5), ["custom_explore_fn must be callable or None, got 5 (int)"]),
    (dict(time_attr=""), ["time_attr must be a result field name (str), got '' (str)"]),
    (dict(metric=3), ["metric must be a str, got 3 (int)"]),
    (dict(exploit=False, explore=False), ["exploit=False, explore=False", "never change a trial"]),
])
def test_pbt_arguments(kwargs, fragments):
    settings = dict(hyperparam_mutations=MUT)
    settings.update(kwargs)
    raises(ConfigError, lambda: PopulationBasedTraining(**settings), *fragments)


@pytest.mark.parametrize("mutations,fragments", [
    (None, ["nothing to mutate", "hyperparam_mutations", "custom_explore_fn"]),
    ({}, ["nothing to mutate"]),
    ({"h1": tune.sample_from(lambda spec: 1 - spec.config["h0"])},
     ["hyperparam_mutations['h1'] is a tune.sample_from(...)", "domain", "list", "function of no arguments"]),
    ({"h0": tune.grid_search([0.0, 1.0])}, ["hyperparam_mutations['h0'] is a tune.grid_search(...)"]),
    ({"lr": 0.1}, ["hyperparam_mutations['lr'] must be a dict, list, tuple, tune domain or callable, got 0.1 (float)"]),
    ({"lr": "uniform"}, ["hyperparam_mutations['lr'] must be", "got 'uniform' (str)"]),
    ({"bs": []}, ["hyperparam_mutations['bs']", "non-empty list", "got []"]),
    ({"opt": {}}, ["hyperparam_mutations['opt']", "non-empty dict", "got {}"]),
    ({"opt": {"lr": tune.sample_from(lambda c: 1)}}, ["hyperparam_mutations['opt']['lr'] is a tune.sample_from"]),
    ([("lr", [1, 2])], ["hyperparam_mutations must be a dict, got"]),
])
def test_pbt_mutations(mutations, fragments):
    raises(ConfigError, lambda: PopulationBasedTraining(hyperparam_mutations=mutations), *fragments)


@pytest.mark.parametrize(("options", "explored_lr"), [
    ({"custom_explore_fn": lambda config: {**config, "lr": 0.5}}, 0.5),  # the function's config
    ({"explore": False}, 0.2),  # the donor's config, unchanged
])
def test_explore_only_or_custom_fn_needs_no_mutations(storage, options, explored_lr):
    """Neither needs hyperparam_mutations, and each explores as it says: the trial with lr=0.1 clones the
    one with lr=0.2 at iteration 2 (trials played by the simulated executor)."""
    scheduler = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                        quantile_fraction=0.5, synch=True, **options)
    executor = SimulatedExecutor(lambda config, iteration, state: {"score": iteration * config["lr"]})
    results = Tuner(executor.trainable, param_space={"lr": tune.grid_search([0.1, 0.2])},
                    tune_config=TuneConfig(metric="score", mode="max", seed=0, scheduler=scheduler),
                    run_config=tune.RunConfig(storage_path=storage, verbose=0, executor=executor,
                                              stop={"training_iteration": 3})).fit()
    (explore,) = results.events_of("explore")
    assert (explore["trial_id"], explore["donor"]) == (results[0].trial_id, results[1].trial_id)
    assert explore["new_config"] == {"lr": explored_lr} == results[0].config


# -- config objects ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,fragments", [
    (lambda: TuneConfig(mode="best"), ["TuneConfig(mode=...) must be 'min' or 'max', got 'best'"]),
    (lambda: TuneConfig(metric=""), ["TuneConfig(metric=...) must be a non-empty str, got '' (str)"]),
    (lambda: TuneConfig(num_samples=0), ["TuneConfig(num_samples=...) must be an int >= 1, got 0 (int)"]),
    (lambda: TuneConfig(num_samples=True), ["num_samples", "got True (bool)"]),
    (lambda: TuneConfig(seed=-1), ["TuneConfig(seed=...) must be an int >= 0 or None, got -1 (int)"]),
    (lambda: TuneConfig(seed=1.5), ["TuneConfig(seed=...)", "got 1.5 (float)"]),
    (lambda: TuneConfig(max_concurrent_trials=0), ["max_concurrent_trials=...) must be an int >= 1 or None, got 0"]),
    (lambda: TuneConfig(scheduler="pbt"), ["TuneConfig(scheduler=...) must be a pbtlab scheduler", "'pbt' (str)"]),
    (lambda: TuneConfig(search_alg=object()), ["search_alg", "not supported"]),
    (lambda: tune.RunConfig(stop="done"), ["RunConfig(stop=...) must be a dict", "got 'done' (str)"]),
    (lambda: tune.RunConfig(stop={"training_iteration": "100"}),
     ["RunConfig(stop=...) needs metric names mapped to numbers, got 'training_iteration': '100' (str)"]),
    (lambda: tune.RunConfig(verbose=5), ["RunConfig(verbose=...) must be 0, 1, 2 or 3, got 5 (int)"]),
    (lambda: tune.RunConfig(name="a/b"), ["RunConfig(name=...) must be a folder name", "'a/b' (str)"]),
    (lambda: tune.RunConfig(storage_path=3), ["RunConfig(storage_path=...) must be a path, got 3 (int)"]),
    (lambda: tune.RunConfig(failure_config={"max_failures": 3}), ["RunConfig(failure_config=...) must be a FailureConfig"]),
    (lambda: tune.RunConfig(executor="gpu"), ["RunConfig(executor=...) must be 'inprocess', 'greenlets', 'process', 'ray'", "'gpu'"]),
    (lambda: tune.FailureConfig(max_failures=-2), ["FailureConfig(max_failures=...) must be an int >= -1, got -2"]),
    (lambda: tune.CheckpointConfig(num_to_keep=0), ["CheckpointConfig(num_to_keep=...) must be an int >= 1 or None, got 0"]),
])
def test_config_objects(make, fragments):
    raises(ConfigError, make, *fragments)


# -- Tuner: errors before any trial starts -----------------------------------------------------------------------
def _never_called(config):  # pragma: no cover - must not run
    raise AssertionError("the trainable must not run when the setup is invalid")


@pytest.mark.parametrize("kwargs,fragments", [
    (dict(param_space=[1, 2]), ["Tuner(param_space=...) must be a dict, got [1, 2] (list)"]),
    (dict(tune_config={"metric": "Q"}), ["Tuner(tune_config=...) must be a TuneConfig"]),
    (dict(run_config={}), ["Tuner(run_config=...) must be a RunConfig"]),
])
def test_tuner_arguments(kwargs, fragments):
    raises(ConfigError, lambda: Tuner(_never_called, **kwargs), *fragments)
    raises(ConfigError, lambda: Tuner(5), "Tuner(trainable) needs a function trainable(config), got 5 (int)")


def _fit(storage, scheduler=None, param_space=None, **tune_kwargs):
    return Tuner(_never_called, param_space=param_space or {"lr": 0.1},
                 tune_config=TuneConfig(scheduler=scheduler, seed=0, **tune_kwargs),
                 run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()


def test_pbt_without_metric_or_mode_fails_before_any_trial(storage):
    pbt = PopulationBasedTraining(hyperparam_mutations=MUT)
    raises(ConfigError, lambda: _fit(storage, pbt), "PopulationBasedTraining needs a metric and a mode",
           "metric=None, mode=None", "TuneConfig(metric=..., mode=...)")
    assert not os.path.exists(storage)  # nothing was created, nothing ran


def test_metric_set_twice_differently_fails_before_any_trial(storage):
    pbt = PopulationBasedTraining(hyperparam_mutations=MUT, metric="Q", mode="max")
    raises(ConfigError, lambda: _fit(storage, pbt, metric="loss", mode="min"),
           "metric/mode are set both in the scheduler ('Q', 'max') and in TuneConfig ('loss', 'min')")
    assert not os.path.exists(storage)


@pytest.mark.parametrize("space,fragments", [
    ({"x": tune.sample_from(lambda spec: spec.config["nokey"])},
     ["sample_from values could not be resolved (circular or missing keys): x"]),
    ({"a": tune.sample_from(lambda c: c["b"]), "b": tune.sample_from(lambda c: c["a"])},
     ["sample_from values could not be resolved (circular or missing keys): a, b"]),
    ({"o": {"a": tune.sample_from(lambda c: c["o"]["a"])}},
     ["sample_from values could not be resolved (circular or missing keys): o/a"]),
])
def test_unresolvable_param_space_fails_before_any_trial(storage, space, fragments):
    raises(ConfigError, lambda: _fit(storage, param_space=space), *fragments)
    assert not os.path.exists(storage)


def test_sample_from_error_names_the_missing_key(storage):
    raises(ConfigError, lambda: _fit(storage, param_space={"x": tune.sample_from(lambda c: c["nokey"])}),
           "sample_from at x failed", "nokey")


def test_existing_experiment_name_gets_the_next_free_folder_and_says_so(storage, caplog):
    def one(config):
        tune.report({"a": 1})

    run = lambda: Tuner(one, run_config=tune.RunConfig(storage_path=storage, name="exp", verbose=0)).fit()  # noqa: E731
    first = run()
    with caplog.at_level("WARNING", logger="pbtlab"):
        second = run()
    assert os.path.basename(first.experiment_path) == "exp" and os.path.basename(second.experiment_path) == "exp_1"
    assert "an experiment already exists at" in caplog.text and "Tuner.restore(" in caplog.text
    assert len(first[0].history()) == 1  # the first run is untouched


# -- errors while trials run ----------------------------------------------------------------------------------------
def _run(storage, fn, scheduler=None, max_failures=0, stop=None, **tune_kwargs):
    return Tuner(fn, param_space={"x": tune.grid_search([1, 2])},
                 tune_config=TuneConfig(seed=0, scheduler=scheduler, **tune_kwargs),
                 run_config=tune.RunConfig(storage_path=storage, verbose=0, stop=stop,
                                           failure_config=tune.FailureConfig(max_failures=max_failures))).fit()


def _reports_a(config):
    for i in range(8):
        tune.report({"a": float(i)})


def test_metric_never_reported_under_pbt_names_it_and_lists_reported(storage):
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"x": [1, 2]})
    error = raises(ConfigError, lambda: _run(storage, _reports_a, pbt, metric="acc", mode="max"),
                   "PopulationBasedTraining needs 'acc' in every report", "reported ['a']",
                   "require_attrs=False")
    assert "training_iteration" not in str(error)  # automatic fields are not listed as the user's


def test_metric_never_reported_under_fifo_names_it_and_lists_reported(storage):
    raises(ConfigError, lambda: _run(storage, _reports_a, metric="acc", mode="max"), "'acc'", "['a']")


def test_metric_never_reported_get_best_result(storage):
    results = _run(storage, _reports_a)
    raises(ConfigError, lambda: results.get_best_result("acc", "max"),
           "no trial reported a usable value of metric 'acc'", "'a'")
    raises(ConfigError, lambda: results.get_best_result(), "get_best_result needs metric and mode",
           "metric=None, mode=None")


def test_stop_on_a_metric_never_reported(storage):
    raises(ConfigError, lambda: _run(storage, _reports_a, stop={"acc": 1.0}),
           "RunConfig(stop={'acc': 1.0}) names 'acc', but trial", "did not report it", "'a'")


def test_non_dict_report_is_a_usage_error_not_retried(storage):
    def bad(config):
        tune.report([1, 2])

    results = _run(storage, bad, max_failures=3)
    assert results.num_errors == 2
    for result in results:
        assert result.status == "ERROR"
        assert isinstance(result.error, TrialError) and isinstance(result.error, PbtlabError)
        assert str(result.error) == (f"Trial {result.trial_id} failed: ReportError: tune.report(metrics) needs a "
                                     "dict of metrics, got [1, 2] (list)")
    errors = results.events_of("trial_error")
    assert [e["will_retry"] for e in errors] == [False, False]  # retrying cannot help


def test_report_with_non_str_key(storage):
    def bad(config):
        tune.report({1: 2.0})

    results = _run(storage, bad)
    assert "metric names must be str, got key 1 (int)" in str(results[0].error)


def test_report_with_a_non_checkpoint(storage, tmp_path):
    def bad(config):
        tune.report({"a": 1}, checkpoint=str(tmp_path))

    results = _run(storage, bad)
    assert "tune.report(checkpoint=...) needs a tune.Checkpoint or None, got" in str(results[0].error)


def test_report_with_a_checkpoint_deleted_before_report(storage, tmp_path):
    def bad(config):
        path = tmp_path / f"ckpt{config['x']}"
        path.mkdir()
        checkpoint = tune.Checkpoint.from_directory(str(path))
        path.rmdir()
        tune.report({"a": 1}, checkpoint=checkpoint)

    results = _run(storage, bad, max_failures=2)
    assert results.num_errors == 2
    assert f"tune.report(checkpoint=...): directory '{tmp_path / 'ckpt1'}' does not exist" in str(results[0].error)
    assert len(results.events_of("trial_error")) == 2  # a ReportError: not retried


def test_missing_checkpoint_directory():
    raises(ConfigError, lambda: tune.Checkpoint.from_directory("/nonexistent/pbtlab/ckpt"),
           "Checkpoint.from_directory(path): '/nonexistent/pbtlab/ckpt' does not exist")
    raises(ConfigError, lambda: tune.Checkpoint.from_directory(__file__), "is a file, not a directory")
    raises(ConfigError, lambda: tune.Checkpoint.from_directory(3), "needs a directory path, got 3 (int)")


def test_trainable_api_outside_a_trial():
    raises(ReportError, lambda: tune.report({"a": 1}), "tune.report() was called outside a trial")
    raises(ReportError, lambda: tune.get_checkpoint(), "tune.get_checkpoint() was called outside a trial")
    raises(ReportError, lambda: tune.get_context(), "tune.get_context() was called outside a trial")


def test_string_choice_under_pbt_says_to_use_a_list(storage):
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2, metric="a", mode="max",
                                  hyperparam_mutations={"opt": tune.choice(["sgd", "adam"])},
                                  resample_probability=0.0, synch=True)

    def fn(config):
        for i in range(8):
            with_ckpt = tune.Checkpoint.from_directory(os.path.dirname(__file__))
            tune.report({"a": float(i) * config["x"]}, checkpoint=with_ckpt)

    raises(ConfigError, lambda: _run(storage, fn, pbt), "cannot perturb opt=", "multiplying it by",
           "Give hyperparam_mutations['opt'] as a list")


def test_loading_a_missing_experiment(tmp_path):
    raises(ExperimentError, lambda: pbtlab.load_results(str(tmp_path / "nope")), "no experiment directory at")
    (tmp_path / "empty").mkdir()
    raises(ExperimentError, lambda: pbtlab.load_results(str(tmp_path / "empty")),
           "experiment settings (experiment.json) not found")
    raises(ConfigError, lambda: pbtlab.load_results(5), "load_results(path) needs an experiment directory path")
