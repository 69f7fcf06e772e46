"""`import pbtlab` stays lean: numpy only, no pandas, matplotlib or ray."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "matplotlib", "ray", "rich", "scipy", "sklearn", "PIL")


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


def test_import_pbtlab_is_lean():
    loaded = _modules_after("import pbtlab\nfrom pbtlab import tune, Tuner, TuneConfig\n"
                            "from pbtlab.schedulers import PopulationBasedTraining\n"
                            "from pbtlab.examples.toy import get_init_theta")
    assert "pbtlab" in loaded and "numpy" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "_hashlib" not in loaded  # OpenSSL, ~3 ms


def test_a_whole_run_without_analysis_imports_no_pandas(tmp_path):
    loaded = _modules_after(
        "from pbtlab.examples.runs import run_toy_pbt\n"
        f"r = run_toy_pbt(population=2, seed=0, storage_path={str(tmp_path)!r}, verbose=1)\n"
        "assert r[0].metrics['Q'] > 1.19")
    assert not loaded & {"pandas", "matplotlib", "ray"}, loaded & {"pandas", "matplotlib", "ray"}
    assert not loaded & {"_hashlib", "secrets"}  # OpenSSL (~4 ms): trial ids use CPython's own SHA-1


def test_the_check_can_fail():
    assert "pandas" in _modules_after("import pandas")


def test_the_schedulers_pbt_is_compared_with_load_when_first_used():
    script = ("import sys\nfrom pbtlab.tune.schedulers import PopulationBasedTraining\nimport pbtlab.schedulers as s\n"
              "names = ('pbtlab.schedulers.asha', 'pbtlab.schedulers.hyperband', 'pbtlab.schedulers.median_stopping')\n"
              "print([n in sys.modules for n in names])\n"
              "from pbtlab.tune.schedulers import ASHAScheduler, HyperBandScheduler\n"
              "print(ASHAScheduler is s.ASHAScheduler, s.MedianStoppingRule.__module__, "
              "[n in sys.modules for n in names])")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == ["[False, False, False]",
                                "True pbtlab.schedulers.median_stopping [True, True, True]"]


def test_what_the_tutorial_does_not_use_is_imported_when_first_used():
    """The Ray-style submodules of ``tune`` and ``load_results`` (with its reader of Ray runs) load on first use."""
    lazy = ("pbtlab.tune.schedulers", "pbtlab.tune.search", "pbtlab.search", "pbtlab.tune.stopper",
            "pbtlab.analysis.loading", "pbtlab.compat.runs")
    script = ("import sys\nfrom pbtlab import tune, Tuner, TuneConfig\n"
              f"lazy = {lazy!r}\n"
              "print([n for n in lazy if n in sys.modules])\n"
              "from pbtlab import load_results\nfrom pbtlab.tune import search\n"
              "print(tune.stopper.MaximumIterationStopper.__name__, tune.schedulers.PopulationBasedTraining.__name__, "
              "search.BasicVariantGenerator.__name__, load_results.__module__, 'search' in dir(tune))\n"
              "print([n for n in lazy if n not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == ["[]", "MaximumIterationStopper PopulationBasedTraining BasicVariantGenerator "
                                      "pbtlab.analysis.loading True", "[]"]


def test_a_run_with_nothing_foreign_does_not_import_the_ray_compatibility_layer():
    script = ("import sys, tempfile\nfrom pbtlab.examples.runs import run_toy_pbt\n"
              "run_toy_pbt(population=2, seed=0, storage_path=tempfile.mkdtemp(), verbose=0)\n"
              "print(sorted(m for m in sys.modules if m.startswith('pbtlab.compat.')))")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_the_foreign_only_fields_are_the_ones_the_ray_layer_refuses():
    from pbtlab.compat.ray.arguments import RAY_ONLY_ARGUMENTS
    from pbtlab.config import FOREIGN_ONLY_FIELDS

    assert {kind: set(names) for kind, names in FOREIGN_ONLY_FIELDS.items()} == \
        {kind: set(names) for kind, names in RAY_ONLY_ARGUMENTS.items()}
