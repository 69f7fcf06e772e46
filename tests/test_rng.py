"""pbtlab.rng: numpy's default_rng draw for draw and state for state, without importing numpy.random in a run."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtlab.rng import Stream, seeded, spawn_streams, unseeded

SEEDS = st.integers(min_value=0, max_value=2**200)
BOUNDS = [1, 2, 3, 5, 7, 10, 1000, 2**31, 2**32 - 1, 2**32, 2**32 + 1, 2**33 + 7, 2**62, 2**63 - 1]
DRAW = st.one_of(
    st.just(("random",)),
    st.tuples(st.just("integers"), st.sampled_from(BOUNDS)),
    st.tuples(st.just("integers"), st.integers(-(10**12), 10**12), st.sampled_from([1, 2, 17, 2**40])),
    st.tuples(st.just("uniform"), st.floats(-1e6, 1e6), st.floats(0, 1e6)),
)


def numpy_streams(seed: int) -> list[np.random.Generator]:
    return [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2)]


def draw(rng, step):
    kind, *arguments = step
    if kind == "integers" and len(arguments) == 2:
        low, span = arguments
        return rng.integers(low, low + span)
    if kind == "uniform":
        low, span = arguments
        return rng.uniform(low, low + span)
    return getattr(rng, kind)(*arguments)


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, steps=st.lists(DRAW, max_size=40))
def test_spawned_streams_draw_and_keep_state_as_numpy(seed, steps):
    for ours, theirs in zip(spawn_streams(seed), numpy_streams(seed)):
        assert ours.bit_generator.state == theirs.bit_generator.state
        for step in steps:
            mine, expected = draw(ours, step), draw(theirs, step)
            assert (mine, type(mine)) == (expected, type(expected)), step
        assert ours.bit_generator.state == theirs.bit_generator.state
        assert not isinstance(ours, np.random.Generator) and ours._numpy is None  # numpy was not needed


@settings(max_examples=50, deadline=None)
@given(seed=SEEDS)
def test_seeded_is_default_rng_of_the_same_seed(seed):
    ours, theirs = seeded(seed), np.random.default_rng(seed)
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert [ours.random() for _ in range(3)] == [theirs.random() for _ in range(3)]


def test_a_state_set_from_numpy_continues_as_numpy_and_one_it_reads_back_is_the_same():
    theirs = np.random.default_rng(5)
    theirs.integers(3)  # a 32-bit draw: half of a 64-bit one waits in the state (has_uint32)
    ours = seeded(0)
    ours.bit_generator.state = theirs.bit_generator.state
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert [ours.integers(3), ours.random(), ours.integers(2**40)] == [theirs.integers(3), theirs.random(),
                                                                      theirs.integers(2**40)]


def test_any_other_call_hands_the_stream_to_numpy_at_the_same_state():
    ours, theirs = spawn_streams(11)[1], numpy_streams(11)[1]
    assert ours.integers(5) == theirs.integers(5)
    assert ours.normal(2.0, 3.0) == theirs.normal(2.0, 3.0)  # not computed here
    assert ours._numpy is not None and "handed to numpy" in repr(ours)
    assert ours.choice(10, p=[0.1] * 10) == theirs.choice(10, p=[0.1] * 10)
    assert ours.uniform(0.0, 1.0, size=3).tolist() == theirs.uniform(0.0, 1.0, size=3).tolist()
    assert [ours.random(), ours.integers(7), ours.uniform(1, 2)] == [theirs.random(), theirs.integers(7),
                                                                     theirs.uniform(1, 2)]
    assert ours.bit_generator is ours._numpy.bit_generator
    assert ours.bit_generator.state == theirs.bit_generator.state


@pytest.mark.parametrize("call", [lambda r: r.integers(0), lambda r: r.integers(5, 5), lambda r: r.uniform(2.0, 1.0),
                                  lambda r: r.uniform(0.0, float("inf")), lambda r: r.integers(2**64)])
def test_bad_arguments_get_numpys_error(call):
    ours, theirs = seeded(1), np.random.default_rng(1)
    with pytest.raises(Exception) as expected:
        call(theirs)
    with pytest.raises(type(expected.value), match=str(expected.value)[:30].replace("(", r"\(").replace(")", r"\)")):
        call(ours)


def test_a_state_that_is_not_pcg64s_gets_numpys_error():
    ours = seeded(1)
    with pytest.raises((ValueError, TypeError)):
        np.random.default_rng(1).bit_generator.state = {"bit_generator": "MT19937"}
    with pytest.raises((ValueError, TypeError)):
        ours.bit_generator.state = {"bit_generator": "MT19937"}


def test_copies_and_pickles_go_on_alike():
    ours = seeded(3)
    ours.random()
    copied, unpickled = copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))
    expected = [ours.random(), ours.integers(100)]
    assert [copied.random(), copied.integers(100)] == expected == [unpickled.random(), unpickled.integers(100)]


def test_a_search_seeded_with_an_int_samples_as_default_rng_of_it():
    from pbtlab import tune
    from pbtlab.search import BasicVariantGenerator
    from pbtlab.space import resolve_param_space

    space = {"x": tune.uniform(0, 1), "n": tune.randint(0, 100)}
    ours = BasicVariantGenerator(random_state=3).resolve(space, 4, None)
    assert ours == resolve_param_space(space, 4, np.random.default_rng(3))


def test_unseeded_streams_differ():
    assert unseeded().bit_generator.state != unseeded().bit_generator.state
    assert isinstance(Stream(0).random(), float)


def test_a_seeded_pbt_run_and_a_seeded_search_do_not_import_numpy_random(tmp_path):
    code = (
        "import sys\n"
        "from pbtlab.examples.runs import run_toy_pbt\n"
        f"results = run_toy_pbt(population=4, seed=0, iterations=12, storage_path={str(tmp_path)!r}, verbose=0)\n"
        "assert len(results.events_of('exploit')) > 0\n"
        "from pbtlab import tune\n"
        "from pbtlab.search import BasicVariantGenerator\n"
        "configs = BasicVariantGenerator(random_state=3).resolve({'x': tune.uniform(0, 1)}, 2, None)\n"
        "assert len(configs) == 2\n"
        "print('numpy.random' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
