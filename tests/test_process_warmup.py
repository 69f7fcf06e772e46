"""ProcessExecutor(warm_up_torch=True): a driver that imported torch imports torch._dynamo once before forking,
so forked workers do not each pay for it at their first optimizer. Each case runs in a fresh interpreter,
because this test process may have imported torch._dynamo already."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import json, sys
import torch  # the user's script imports torch, as a torch trainable's module does
from pbtlab import Tuner, TuneConfig, RunConfig, tune
from pbtlab.executors.process import ProcessExecutor

def trainable(config):
    tune.report({"dynamo_in_worker": "torch._dynamo" in sys.modules, "pid": __import__("os").getpid()})

grid = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
             tune_config=TuneConfig(metric="pid", mode="max", seed=0),
             run_config=RunConfig(storage_path=sys.argv[2], verbose=0, stop={"training_iteration": 1},
                                  executor=ProcessExecutor(warm_up_torch=sys.argv[1] == "on"))).fit()
print(json.dumps({"workers": sorted(r.metrics["dynamo_in_worker"] for r in grid),
                  "driver": "torch._dynamo" in sys.modules}))
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("warm_up, expected", [("on", True), ("off", False)])
def test_forked_workers_inherit_torch_dynamo_only_with_the_warm_up(tmp_path, warm_up, expected):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), warm_up, str(tmp_path / "runs")], capture_output=True,
                          text=True, cwd=ROOT, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"workers": [expected, expected], "driver": expected}


def test_warm_up_torch_must_be_a_bool():
    from pbtlab.errors import ConfigError
    from pbtlab.executors.process import ProcessExecutor

    with pytest.raises(ConfigError, match=r"ProcessExecutor\(warm_up_torch=...\) must be True or False, got 'yes'"):
        ProcessExecutor(warm_up_torch="yes")
