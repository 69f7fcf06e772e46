"""Property-based: random configuration values and reports either work or raise a ConfigError /
ReportError that names the argument and what it got; never anything else."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbtlab import tune
from pbtlab.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from pbtlab.errors import ConfigError, PbtlabError
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.tuner import Tuner

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-10**9, 10**9),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()), st.just(lambda: 1.0),
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


PBT_RULES = {
    "time_attr": lambda v: isinstance(v, str) and v != "",
    "mode": lambda v: v in (None, "min", "max"),
    "metric": lambda v: v is None or isinstance(v, str),
    "perturbation_interval": lambda v: is_number(v) and v > 0,
    "burn_in_period": lambda v: is_number(v) and v >= 0,
    "quantile_fraction": lambda v: is_number(v) and 0 <= v <= 0.5,
    "resample_probability": lambda v: is_number(v) and 0 <= v <= 1,
    "perturbation_factors": lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_number(x) for x in v),
    "custom_explore_fn": lambda v: v is None or callable(v),
}

TUNE_RULES = {
    "metric": lambda v: v is None or (isinstance(v, str) and v != ""),
    "mode": lambda v: v in (None, "min", "max"),
    "num_samples": lambda v: is_int(v, 1),
    "seed": lambda v: v is None or is_int(v, 0),
    "max_concurrent_trials": lambda v: v is None or is_int(v, 1),
    "time_budget_s": lambda v: v is None or (is_number(v) and v > 0),
}

OTHER_RULES = {
    (FailureConfig, "max_failures"): lambda v: is_int(v, -1),
    (FailureConfig, "fail_fast"): lambda v: isinstance(v, bool),
    (CheckpointConfig, "num_to_keep"): lambda v: v is None or is_int(v, 1),
    (RunConfig, "verbose"): lambda v: v is None or v in (0, 1, 2, 3),  # True/False too, as in Ray
    (RunConfig, "progress_interval_s"): lambda v: is_number(v) and v > 0,
    (RunConfig, "state_save_period_s"): lambda v: v is None or (is_number(v) and v >= 0),
    (RunConfig, "executor"): lambda v: v is None or v in ("inprocess", "greenlets", "process", "ray") or not isinstance(v, str),
    (RunConfig, "stop"): lambda v: v is None or callable(v) or (isinstance(v, dict) and all(  # bools as in Ray
        isinstance(k, str) and (isinstance(x, bool) or is_number(x)) for k, x in v.items())),
}


def check(build, argument: str, value: Any, valid: bool) -> None:
    try:
        build()
    except ConfigError as error:
        assert not valid, f"{argument}={value!r} is valid but raised: {error}"
        message = str(error)
        assert argument in message and "got" in message, message
    else:
        assert valid, f"{argument}={value!r} is invalid but was accepted"


@SETTINGS
@given(argument=st.sampled_from(sorted(PBT_RULES)), value=anything)
def test_population_based_training_arguments(argument, value):
    kwargs = {"hyperparam_mutations": {"lr": tune.uniform(0.0, 1.0)}, argument: value}
    check(lambda: PopulationBasedTraining(**kwargs), argument, value, PBT_RULES[argument](value))


@SETTINGS
@given(argument=st.sampled_from(sorted(TUNE_RULES)), value=anything)
def test_tune_config_arguments(argument, value):
    check(lambda: TuneConfig(**{argument: value}), argument, value, TUNE_RULES[argument](value))


@SETTINGS
@given(key=st.sampled_from(sorted(OTHER_RULES, key=str)), value=anything)
def test_run_failure_checkpoint_config_arguments(key, value):
    cls, argument = key
    check(lambda: cls(**{argument: value}), argument, value, OTHER_RULES[key](value))


@SETTINGS
@given(lower=anything, upper=anything, kind=st.sampled_from(["uniform", "loguniform", "randint"]))
def test_domain_bounds(lower, upper, kind):
    def valid() -> bool:
        if kind == "randint":
            return is_int(lower, -10**18) and is_int(upper, -10**18) and lower < upper
        ok = is_number(lower) and is_number(upper) and lower < upper
        return ok and (kind != "loguniform" or lower > 0)

    check(lambda: getattr(tune, kind)(lower, upper), kind, (lower, upper), valid())


@SETTINGS
@given(mutation=anything)
def test_hyperparam_mutation_values(mutation):
    valid = callable(mutation) or (isinstance(mutation, (list, tuple)) and len(mutation) > 0) or (
        isinstance(mutation, dict) and len(mutation) > 0 and False)
    if isinstance(mutation, dict) and mutation:
        valid = False  # nested dicts need domains/lists/callables as leaves; integers are not
    check(lambda: PopulationBasedTraining(hyperparam_mutations={"lr": mutation}), "hyperparam_mutations", mutation,
          valid)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(report=st.one_of(anything, st.dictionaries(st.integers(), st.floats(), min_size=1, max_size=2)))
def test_bad_reports_error_the_trial_clearly_and_nothing_else(report, tmp_path_factory):
    def trainable(config):
        tune.report(report)

    storage = str(tmp_path_factory.mktemp("runs"))
    results = Tuner(trainable, tune_config=TuneConfig(seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0,
                                         failure_config=FailureConfig(max_failures=2))).fit()
    if isinstance(report, dict) and all(isinstance(k, str) for k in report):
        assert results.num_errors == 0
        return
    (event,) = results.events_of("trial_error")
    assert event["error_type"] == "ReportError" and event["will_retry"] is False
    assert "tune.report(metrics)" in event["message"] and "got" in event["message"]
    assert results[0].status == "ERROR"


def test_every_error_is_a_pbtlab_error_and_a_builtin():
    for cls in (ConfigError,):
        assert issubclass(cls, PbtlabError) and issubclass(cls, ValueError)
