"""Search spaces: domains, quantization, grid expansion, sample_from, nested dicts, seeding, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pbtlab
from pbtlab import tune
from pbtlab.errors import ConfigError, PbtlabError
from pbtlab.space import Domain, resolve_param_space

N = 2000


def draws(domain, seed=0, n=N):
    rng = np.random.default_rng(seed)
    return [domain.sample(rng) for _ in range(n)]


def resolve(space, num_samples=1, seed=0):
    return resolve_param_space(space, num_samples, np.random.default_rng(seed))


# -- domains ------------------------------------------------------------------------------------------------
def test_uniform():
    values = draws(tune.uniform(-2.0, 3.0))
    assert all(type(v) is float and -2.0 <= v < 3.0 for v in values)
    assert min(values) < -1.9 and max(values) > 2.9
    assert abs(np.mean(values) - 0.5) < 0.1


def test_loguniform_is_uniform_in_log_space():
    values = draws(tune.loguniform(1e-4, 1e-1))
    assert all(1e-4 <= v < 1e-1 for v in values)
    logs = np.log10(values)
    assert abs(np.mean(logs) - (-2.5)) < 0.05  # uniform in log space: mean of log10 is the midpoint
    assert 0.3 < np.mean(np.array(values) < 1e-2) * 3 / 2 < 1.7  # 2/3 of the mass below 1e-2


def test_quantization_is_rays_np_round():
    """Ray: np.round(value / q) * q on the raw sample; the same generator stream gives the same raw value."""
    for domain, raw_draw in [
        (tune.quniform(0.0, 1.0, 0.05), lambda rng: rng.uniform(0.0, 1.0)),
        (tune.qloguniform(5e-3, 1e-1, 5e-4), lambda rng: np.exp(rng.uniform(np.log(5e-3), np.log(1e-1)))),
    ]:
        rng_a, rng_b = np.random.default_rng(42), np.random.default_rng(42)
        for _ in range(200):
            value = domain.sample(rng_a)
            raw = raw_draw(rng_b)
            assert value == float(np.round(raw / domain.q) * domain.q)


def test_quantized_values_are_multiples_of_q():
    for value in draws(tune.qloguniform(5e-3, 1e-1, 5e-4)):
        assert 5e-3 <= value <= 1e-1
        assert math.isclose(value / 5e-4, round(value / 5e-4), abs_tol=1e-9)
    assert sorted(set(draws(tune.quniform(0.0, 1.0, 0.25)))) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_quantized_float_stays_within_bounds():
    values = draws(tune.quniform(0.05, 0.97, 0.1))
    assert 0.05 <= min(values) and max(values) <= 0.97


def test_quantized_int_stays_within_bounds():
    values = draws(tune.qrandint(1, 12, 5))
    assert set(values) <= {5, 10}


def test_randint_upper_is_exclusive():
    values = draws(tune.randint(3, 7))
    assert set(values) == {3, 4, 5, 6} and all(type(v) is int for v in values)


def test_qrandint_upper_is_inclusive():
    assert set(draws(tune.qrandint(0, 10, 5))) == {0, 5, 10}
    assert set(draws(tune.qrandint(1, 4))) == {1, 2, 3, 4}


def test_lograndint():
    values = draws(tune.lograndint(1, 100))
    assert all(type(v) is int and 1 <= v < 100 for v in values)
    assert np.mean(np.array(values) < 10) > 0.4  # log-uniform: half the mass below sqrt(100)


def test_choice():
    values = draws(tune.choice(["a", "b", "c"]))
    assert set(values) == {"a", "b", "c"}
    lists = draws(tune.choice([[1], [2]]), n=10)
    lists[0].append(99)
    assert tune.choice([[1], [2]]).categories == [[1], [2]]  # samples are copies


def test_randn():
    values = draws(tune.randn(10.0, 2.0))
    assert abs(np.mean(values) - 10.0) < 0.2 and abs(np.std(values) - 2.0) < 0.2
    assert all(math.isclose(v / 0.5, round(v / 0.5), abs_tol=1e-9) for v in draws(tune.qrandn(0.0, 1.0, 0.5)))


def test_reprs():
    assert repr(tune.uniform(0.0, 1.0)) == "tune.uniform(0.0, 1.0)"
    assert repr(tune.qloguniform(5e-3, 1e-1, 5e-4)) == "tune.qloguniform(0.005, 0.1, q=0.0005)"
    assert repr(tune.randint(1, 10)) == "tune.randint(1, 10)"
    assert repr(tune.qrandint(0, 10, 5)) == "tune.qrandint(0, 10, 5)"  # as written (stored upper is exclusive)
    assert repr(tune.lograndint(1, 100)) == "tune.lograndint(1, 100)"
    assert repr(tune.choice([1, 2])) == "tune.choice([1, 2])"
    assert repr(tune.grid_search([0.0, 1.0])) == "tune.grid_search([0.0, 1.0])"


def test_tune_namespace_is_the_same_objects():
    assert tune.Tuner is pbtlab.Tuner and tune.TuneConfig is pbtlab.TuneConfig
    assert tune.RunConfig is pbtlab.RunConfig and tune.FailureConfig is pbtlab.FailureConfig
    assert tune.CheckpointConfig is pbtlab.CheckpointConfig and tune.Checkpoint is pbtlab.Checkpoint
    assert isinstance(tune.uniform(0, 1), Domain)


# -- resolution --------------------------------------------------------------------------------------------------
def test_grid_cross_product_order_times_num_samples():
    space = {"a": tune.grid_search([1, 2]), "b": tune.grid_search(["x", "y", "z"]), "c": 7}
    configs = resolve(space, num_samples=2)
    pairs = [(c["a"], c["b"]) for c in configs]
    one = [(1, "x"), (2, "x"), (1, "y"), (2, "y"), (1, "z"), (2, "z")]  # the first key varies fastest
    assert pairs == one + one
    assert all(c["c"] == 7 for c in configs)


def test_num_samples_draws_fresh_values_per_sample():
    configs = resolve({"h": tune.grid_search([0, 1]), "lr": tune.uniform(0, 1)}, num_samples=3)
    assert [c["h"] for c in configs] == [0, 1] * 3
    assert len({c["lr"] for c in configs}) == 6


def test_same_seed_same_configs_other_seed_differs():
    space = {"lr": tune.loguniform(1e-4, 1e-1), "bs": tune.choice([16, 32, 64]), "n": tune.randint(0, 1000),
             "g": tune.grid_search([1, 2])}
    assert resolve(space, 4, seed=5) == resolve(space, 4, seed=5)
    assert resolve(space, 4, seed=5) != resolve(space, 4, seed=6)


@pytest.mark.parametrize("fn", [
    lambda spec: 1.0 - spec.config["h0"],
    lambda spec: 1.0 - spec.config.h0,
    lambda config: 1.0 - config["h0"],
    lambda config: 1.0 - config.get("h0"),
], ids=["spec.config[]", "spec.config.attr", "config[]", "config.get"])
def test_sample_from_both_styles(fn):
    configs = resolve({"h0": tune.grid_search([0.0, 1.0, 0.25]), "h1": tune.sample_from(fn)})
    assert [(c["h0"], c["h1"]) for c in configs] == [(0.0, 1.0), (1.0, 0.0), (0.25, 0.75)]


def test_sample_from_sees_sampled_values_and_other_sample_froms():
    configs = resolve({"a": tune.sample_from(lambda c: c["b"]), "b": tune.sample_from(lambda c: c["lr"] * 2),
                       "lr": tune.uniform(0, 1)}, num_samples=3)
    for c in configs:
        assert c["b"] == c["lr"] * 2 and c["a"] == c["b"]
        assert not any(isinstance(v, Domain) for v in c.values())


def test_sample_from_in_nested_dicts():
    space = {"model": {"width": tune.grid_search([8, 16]), "depth": tune.sample_from(lambda s: s.config["model"]["width"] // 4)},
             "opt": {"lr": tune.qloguniform(1e-3, 1e-1, 1e-3), "name": "sgd", "betas": [0.9, tune.choice([0.99])]}}
    configs = resolve(space)
    assert [c["model"] for c in configs] == [{"width": 8, "depth": 2}, {"width": 16, "depth": 4}]
    for c in configs:
        assert c["opt"]["name"] == "sgd" and c["opt"]["betas"] == [0.9, 0.99]
        assert 1e-3 <= c["opt"]["lr"] <= 1e-1


def test_nested_grid_and_constants_untouched():
    space = {"opt": {"lr": tune.grid_search([0.1, 0.2]), "extra": {"k": [1, 2]}}, "const": "x", "none": None}
    configs = resolve(space)
    assert configs == [{"opt": {"lr": 0.1, "extra": {"k": [1, 2]}}, "const": "x", "none": None},
                       {"opt": {"lr": 0.2, "extra": {"k": [1, 2]}}, "const": "x", "none": None}]
    configs[0]["opt"]["extra"]["k"].append(3)
    assert configs[1]["opt"]["extra"]["k"] == [1, 2]  # independent copies
    assert space["opt"]["extra"]["k"] == [1, 2]  # the space itself is not modified
    assert isinstance(space["opt"]["lr"], type(tune.grid_search([1])))


def test_empty_space():
    assert resolve(None, num_samples=3) == [{}, {}, {}]
    assert resolve({"a": 1}) == [{"a": 1}]


# -- errors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,fragment", [
    (lambda: tune.uniform(1.0, 0.0), "uniform needs lower < upper, got lower=1.0, upper=0.0"),
    (lambda: tune.uniform(0.0, float("inf")), "uniform upper must be finite, got inf"),
    (lambda: tune.uniform("0", 1), "uniform lower must be a number, got '0' (str)"),
    (lambda: tune.loguniform(0.0, 1.0), "loguniform needs lower > 0 (it samples in log space), got lower=0.0"),
    (lambda: tune.quniform(0.0, 1.0, 0), "quniform q must be > 0, got 0"),
    (lambda: tune.qloguniform(1e-3, 1e-1, -1e-3), "qloguniform q must be > 0"),
    (lambda: tune.randint(1.5, 3), "randint lower must be an int, got 1.5 (float)"),
    (lambda: tune.randint(3, 3), "randint needs lower < upper, got lower=3, upper=3"),
    (lambda: tune.lograndint(0, 10), "lograndint needs lower > 0"),
    (lambda: tune.randn(0.0, 0.0), "randn sd must be > 0, got 0.0"),
    (lambda: tune.choice([]), "choice needs a non-empty list of categories, got [] (list)"),
    (lambda: tune.choice("abc"), "choice needs a non-empty list of categories, got 'abc' (str)"),
    (lambda: tune.grid_search([]), "grid_search needs a non-empty list of values, got [] (list)"),
    (lambda: tune.grid_search(3), "grid_search needs a non-empty list of values, got 3 (int)"),
    (lambda: tune.sample_from(5), "sample_from needs a callable, got 5 (int)"),
    (lambda: resolve([1]), "param_space must be a dict, got [1] (list)"),
    (lambda: resolve({}, num_samples=0), "num_samples must be an int >= 1, got 0 (int)"),
])
def test_domain_errors(make, fragment):
    with pytest.raises(ConfigError) as info:
        make()
    assert isinstance(info.value, PbtlabError) and isinstance(info.value, ValueError)
    assert fragment in str(info.value)


def test_sample_from_error_that_is_not_a_lookup_propagates():
    def broken(spec):
        raise ZeroDivisionError("nope")

    with pytest.raises(ZeroDivisionError):
        resolve({"x": tune.sample_from(broken)})


# -- clip (used by PopulationBasedTraining(clip_to_domain=True)) ------------------------------------------------
@pytest.mark.parametrize("domain,cases", [
    (tune.uniform(0.0, 1.0), [(1.08, 1.0), (-0.2, 0.0), (0.3, 0.3)]),
    (tune.qloguniform(5e-3, 1e-1, 5e-4), [(0.0402, 0.04), (0.12, 0.1), (0.004, 0.005)]),
    (tune.quniform(0.05, 0.97, 0.1), [(1.2, 0.9), (0.0, 0.1), (0.44, 0.4)]),
    (tune.randint(1, 10), [(12, 9), (0, 1), (4.6, 5)]),
    (tune.qrandint(0, 10, 5), [(12, 10), (7, 5), (8, 10), (-3, 0)]),
    (tune.qrandint(1, 12, 5), [(13, 10), (1, 5), (0, 5)]),
    (tune.lograndint(1, 100), [(150, 99), (0, 1)]),
])
def test_clip_keeps_values_in_bounds_and_on_the_grid(domain, cases):
    for value, expected in cases:
        assert domain.clip(value) == pytest.approx(expected, abs=1e-12), (domain, value)
        if isinstance(expected, int):
            assert type(domain.clip(value)) is int


@settings(max_examples=3000, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True, width=64),
       q=st.sampled_from([5e-4, 1e-3, 0.1, 0.3, 1.0, 7.0, 1e-8, 2.5e-3]),
       halves=st.integers(-10**6, 10**6))
def test_quantize_is_numpys_formula_to_the_bit(value, q, halves):
    """``_quantize`` uses Python's round where it used ``float(np.round(value / q) * q)``: the same float, zeros
    with their sign, halves to even (exact halfway values are drawn too)."""
    from pbtlab.space import _quantize

    for v in (value, (halves + 0.5) * q, halves * q / 3):
        with np.errstate(over="ignore"):  # a huge value's product may overflow to inf, in both
            expected = float(np.round(v / q) * q) if math.isfinite(v / q) or not math.isfinite(v) else None
        if expected is None:
            continue
        got = _quantize(v, q)
        assert type(got) is float
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == expected and math.copysign(1.0, got) == math.copysign(1.0, expected), (v, q)
