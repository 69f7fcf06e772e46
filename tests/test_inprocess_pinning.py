"""InProcessExecutor(pin_cpu=...): the driver and trial threads share one CPU during the run only."""

from __future__ import annotations

import os

import pytest

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.errors import ConfigError
from pbtlab.executors.inprocess import InProcessExecutor
from pbtlab.tuner import Tuner

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")


def test_trials_run_pinned_and_the_driver_gets_its_cpus_back(storage):
    before = os.sched_getaffinity(0)
    cpu = min(before)
    seen = []

    def trainable(config):
        for step in range(3):
            seen.append(os.sched_getaffinity(0))
            tune.report({"score": step})

    results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])}, tune_config=TuneConfig(seed=0),
                    run_config=RunConfig(storage_path=storage, verbose=0,
                                         executor=InProcessExecutor(pin_cpu=cpu))).fit()
    assert [r.status for r in results] == ["TERMINATED", "TERMINATED"]
    assert seen == [{cpu}] * 6
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("bad", [-1, 10_000, "0", True, 1.5])
def test_pin_cpu_must_be_an_allowed_cpu(bad):
    with pytest.raises(ConfigError, match=r"pin_cpu=...\) must be one of the CPUs this process may use"):
        InProcessExecutor(pin_cpu=bad)
