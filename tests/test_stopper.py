"""tune.stopper: Ray's stoppers, through Tuner.fit, with the iteration each trial stopped at and why."""

from __future__ import annotations

import datetime
import time

import pytest

from pbtlab import ConfigError, TuneConfig, Tuner, tune
from pbtlab.tune.stopper import (
    CombinedStopper,
    ExperimentPlateauStopper,
    FunctionStopper,
    MaximumIterationStopper,
    NoopStopper,
    Stopper,
    TimeoutStopper,
    TrialPlateauStopper,
)

#: Loss curves by name: the trainable reports curve[i] at iteration i + 1 (up to 12 iterations).
CURVES = {
    "flat5": [5.0] * 12,
    "falling": [10.0 - i for i in range(12)],
    "drop_to_1": [10.0, 9.0, 8.0, 7.0, 6.0] + [1.0] * 7,
    "inverse": [1.0 / (i + 1) for i in range(12)],
    "ten": [10.0] * 12,
    "minus1": [-1.0] * 12,
}


def curve_trainable(config):
    for value in CURVES[config["curve"]][: config.get("steps", 12)]:
        tune.report({"loss": value})


def fit(stop, curves, **tune_kwargs):
    tune_kwargs.setdefault("seed", 0)
    return Tuner(curve_trainable, param_space={"curve": tune.grid_search(curves)},
                 tune_config=TuneConfig(**tune_kwargs),
                 run_config=tune.RunConfig(storage_path="results", stop=stop, verbose=0)).fit()


def outcomes(results):
    """{curve: (iteration, reason)} from the trial_complete events."""
    curve_of = {r.trial_id: r.config["curve"] for r in results}
    return {curve_of[e["trial_id"]]: (e["iteration"], e["reason"]) for e in results.events_of("trial_complete")}


def test_maximum_iteration_stopper_stops_each_trial_at_max_iter():
    results = fit(MaximumIterationStopper(max_iter=3), ["flat5", "falling"])
    assert outcomes(results) == {"flat5": (3, "stop_criterion"), "falling": (3, "stop_criterion")}
    assert all(r.metrics["done"] is True for r in results)


def test_trial_plateau_stopper_waits_for_grace_period_and_window():
    stopper = TrialPlateauStopper(metric="loss", std=0.01, num_results=3, grace_period=4)
    results = fit(stopper, ["flat5", "falling", "drop_to_1"])
    # flat5: the window of 3 is flat from iteration 3, but the grace period holds it to 4.
    # drop_to_1: 1.0 from iteration 6, so the window [1, 1, 1] is full at 8. falling never plateaus.
    assert outcomes(results) == {"flat5": (4, "stop_criterion"), "drop_to_1": (8, "stop_criterion"),
                                 "falling": (12, "function_returned")}


def test_trial_plateau_stopper_threshold_and_mode():
    stopper = TrialPlateauStopper(metric="loss", num_results=3, grace_period=0, metric_threshold=2.0, mode="min")
    results = fit(stopper, ["flat5", "drop_to_1"])
    # flat5 plateaus at 5.0, above the threshold, so it runs to the end.
    assert outcomes(results) == {"flat5": (12, "function_returned"), "drop_to_1": (8, "stop_criterion")}


def test_experiment_plateau_stopper_ends_the_run():
    stopper = ExperimentPlateauStopper(metric="loss", std=0.001, top=3, mode="min", patience=2)
    results = fit(stopper, ["falling", "minus1", "ten"], max_concurrent_trials=1)
    # falling (10 down to -1) leaves the best three at [-1, 0, 1]. minus1 reports -1.0: [-1, -1, 0] after its
    # 1st result, [-1, -1, -1] after its 2nd (plateau 1) and 3rd (plateau 2 >= patience): stopped there,
    # and "ten", which never started, is stopped with the run.
    assert outcomes(results) == {"falling": (12, "function_returned"), "minus1": (3, "stop_criterion"),
                                 "ten": (0, "stop_all")}


def test_experiment_plateau_stopper_patience_zero_stops_at_first_plateau():
    stopper = ExperimentPlateauStopper(metric="loss", top=2, patience=0)
    results = fit(stopper, ["flat5", "ten"], max_concurrent_trials=1)
    assert outcomes(results) == {"flat5": (2, "stop_criterion"), "ten": (0, "stop_all")}


def test_combined_stopper_and_a_list_of_stoppers_are_or():
    for stop in (CombinedStopper(MaximumIterationStopper(6), FunctionStopper(lambda tid, r: r["loss"] < 0.5)),
                 [MaximumIterationStopper(6), FunctionStopper(lambda tid, r: r["loss"] < 0.5)]):
        results = fit(stop, ["inverse", "ten"])
        # inverse: 1, 0.5, 0.33 -> below 0.5 at iteration 3; ten: the maximum of 6.
        assert outcomes(results) == {"inverse": (3, "stop_criterion"), "ten": (6, "stop_criterion")}


def test_timeout_stopper_stops_every_trial_with_stop_all():
    def endless(config):
        for step in range(100_000):
            time.sleep(0.005)
            tune.report({"step": step})

    results = Tuner(endless, param_space={"x": tune.grid_search([0, 1])}, tune_config=TuneConfig(seed=0),
                    run_config=tune.RunConfig(storage_path="results", stop=TimeoutStopper(0.2), verbose=0)).fit()
    events = results.events_of("trial_complete")
    assert [e["reason"] for e in events] == ["stop_all", "stop_all"]
    assert all(0 < e["iteration"] < 100_000 for e in events)


def test_noop_stopper_and_subclass_defaults_never_stop():
    class OnlyCall(Stopper):
        def __call__(self, trial_id, result):
            return result["loss"] == 7.0

    assert outcomes(fit(NoopStopper(), ["ten"])) == {"ten": (12, "function_returned")}
    assert outcomes(fit(OnlyCall(), ["falling"])) == {"falling": (4, "stop_criterion")}


def test_counters_are_per_trial_and_count_results():
    stopper = MaximumIterationStopper(2)
    assert [stopper("a", {}), stopper("b", {}), stopper("a", {}), stopper("b", {})] == [False, False, True, True]
    timeout = TimeoutStopper(datetime.timedelta(seconds=30))
    assert timeout.stop_all() is False and repr(timeout) == "TimeoutStopper(timeout=30.0)"


def test_importable_where_ray_users_look():
    import pbtlab.engine.reports
    import pbtlab.tune.stopper

    assert pbtlab.engine.reports.Stopper is Stopper is tune.Stopper is pbtlab.tune.stopper.Stopper
    assert tune.stopper.MaximumIterationStopper is MaximumIterationStopper
    assert FunctionStopper.is_valid_function(lambda t, r: True) is True
    assert FunctionStopper.is_valid_function(MaximumIterationStopper(1)) is False


@pytest.mark.parametrize("build, argument", [
    (lambda: MaximumIterationStopper(0), "max_iter"),
    (lambda: MaximumIterationStopper(2.5), "max_iter"),
    (lambda: TrialPlateauStopper(metric=""), "metric"),
    (lambda: TrialPlateauStopper(metric="loss", std=0), "std"),
    (lambda: TrialPlateauStopper(metric="loss", num_results=0), "num_results"),
    (lambda: TrialPlateauStopper(metric="loss", grace_period=-1), "grace_period"),
    (lambda: TrialPlateauStopper(metric="loss", metric_threshold=1.0), "metric_threshold"),
    (lambda: TrialPlateauStopper(metric="loss", mode="up"), "mode"),
    (lambda: ExperimentPlateauStopper(metric="loss", mode="best"), "mode"),
    (lambda: ExperimentPlateauStopper(metric="loss", top=1), "top"),
    (lambda: ExperimentPlateauStopper(metric="loss", patience=-1), "patience"),
    (lambda: ExperimentPlateauStopper(metric="loss", std=-0.1), "std"),
    (lambda: TimeoutStopper("1h"), "timeout"),
    (lambda: TimeoutStopper(0), "timeout"),
    (lambda: FunctionStopper(3), "FunctionStopper"),
    (lambda: CombinedStopper(MaximumIterationStopper(1), {"loss": 1}), "CombinedStopper"),
    (lambda: tune.RunConfig(stop=[MaximumIterationStopper(1), "x"]), "stop"),
    (lambda: tune.RunConfig(stop=[]), "stop"),
])
def test_bad_arguments_name_themselves(build, argument):
    with pytest.raises(ConfigError, match=argument):
        build()


def test_experiment_plateau_stopper_missing_metric_is_a_clear_error():
    with pytest.raises(ConfigError, match="ExperimentPlateauStopper.*'acc'.*did not report"):
        fit(ExperimentPlateauStopper(metric="acc"), ["ten"])
