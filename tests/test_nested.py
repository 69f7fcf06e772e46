"""Copying and flattening nested configs and rows (pbtlab.nested)."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtlab.nested import copy_tree, flatten

leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                   st.floats(allow_nan=False).map(np.float64), st.integers(-5, 5).map(np.int64))
trees = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                     max_leaves=12)


@settings(max_examples=200, derandomize=True)
@given(trees)
def test_copy_tree_equals_deepcopy_and_shares_no_container(tree):
    copied = copy_tree(tree)
    assert copied == copy.deepcopy(tree)

    def containers(value):
        if isinstance(value, dict):
            yield value
            for item in value.values():
                yield from containers(item)
        elif isinstance(value, list):
            yield value
            for item in value:
                yield from containers(item)

    assert not {id(c) for c in containers(copied)} & {id(c) for c in containers(tree)}


def test_copy_tree_shares_immutable_numpy_scalars_and_copies_arrays_and_structured_scalars():
    array = np.array([1.0, 2.0])
    record = np.zeros(1, dtype=[("a", "f8")])[0]
    config = {"lr": np.float64(0.1), "n": np.int64(3), "on": np.bool_(True), "w": array, "r": record}
    copied = copy_tree(config)
    assert copied["lr"] is config["lr"] and copied["n"] is config["n"] and copied["on"] is config["on"]
    assert copied["w"] is not array and np.array_equal(copied["w"], array)
    assert copied["r"] is not record
    copied["w"][0] = 9.0
    assert array[0] == 1.0


def test_flatten_names_leaves_by_path_and_flattening_again_changes_nothing():
    row = {"loss": 0.5, "config": {"lr": 0.1, "net": {"width": 8}, "empty": {}}, 3: "x", "pair": [1, 2]}
    flat = flatten(row)
    assert flat == {"loss": 0.5, "config/lr": 0.1, "config/net/width": 8, "3": "x", "pair": [1, 2]}
    assert flatten(flat) == flat
