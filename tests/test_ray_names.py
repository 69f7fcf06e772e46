"""Every public name of Ray 2.60's ``ray.tune`` (schedulers, search, stopper, integration, logger, result, utils...
included) imports under ``pbtlab run`` and through ``pbtlab.tune``: it is pbtlab's object, Ray's constant, or a
placeholder that raises ``RayFeatureError`` naming it and what to use instead when it is used."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest

import pbtlab
from pbtlab.compat.ray import names
from pbtlab.compat.ray.shim import WHEEL_HELPERS, RayFeatureError, ray_modules
from pbtlab.unsupported import UnsupportedName

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = json.load(open(names.TABLE, encoding="utf-8"))

#: Names that must be pbtlab's own objects (or Ray's constants), not placeholders.
SUPPORTED = {
    "ray.tune": {"Callback", "Checkpoint", "CheckpointConfig", "ExperimentAnalysis", "FailureConfig", "Result",
                 "ResultGrid", "RunConfig", "Stopper", "Trainable", "TuneConfig", "TuneError", "Tuner", "choice",
                 "get_checkpoint", "get_context", "grid_search", "lograndint", "loguniform", "qloguniform",
                 "qrandint", "qrandn", "quniform", "randint", "randn", "report", "run", "sample_from", "uniform",
                 "with_parameters", "with_resources"},
    "ray.tune.schedulers": {"FIFOScheduler", "PopulationBasedTraining", "PopulationBasedTrainingReplay",
                            "TrialScheduler", "ASHAScheduler", "AsyncHyperBandScheduler", "HyperBandScheduler",
                            "MedianStoppingRule"},
    "ray.tune.utils.mock_trainable": {"MyTrainableClass"},  # Ray's module, read from the wheel
    "ray.tune.search": {"BasicVariantGenerator", "grid_search"},
    "ray.tune.stopper": set(TABLE["modules"]["ray.tune.stopper"]),
    "ray.tune.logger": {"CSVLoggerCallback", "JsonLoggerCallback", "LoggerCallback", "TBXLoggerCallback"},
    "ray.tune.result": set(TABLE["modules"]["ray.tune.result"]),
    "ray.tune.utils": {"validate_save_restore"},
    "ray.tune.integration.pytorch_lightning": {"TuneReportCallback", "TuneReportCheckpointCallback"},
}


def all_names():
    return [(module, name) for module, listed in sorted(TABLE["modules"].items()) for name in listed]


def check_name(module_name, name, value, shown_as):
    """The object a script got for ``module_name.name``: pbtlab's, Ray's constant, or a placeholder failing on use."""
    constants = names.constants(module_name)
    if name in constants:
        assert value == constants[name], (module_name, name)
        return "constant"
    if isinstance(value, UnsupportedName):
        assert name not in SUPPORTED.get(module_name, ()), f"{module_name}.{name} should be pbtlab's"
        with pytest.raises(RayFeatureError) as info:
            value()
        message = str(info.value)
        assert message.startswith(f"{shown_as} is not supported by pbtlab: ") and len(message) > len(shown_as) + 40
        with pytest.raises(RayFeatureError):
            value.some_attribute
        return "placeholder"
    if module_name in WHEEL_HELPERS and getattr(value, "__module__", "") == module_name:
        return "ray wheel"  # a helper module Ray's examples import, run from the installed wheel on pbtlab
    assert (getattr(value, "__module__", "") or "").startswith("pbtlab") or isinstance(value, (str, int, float)), \
        (module_name, name, value)
    return "pbtlab"


def test_every_public_ray_tune_name_imports_under_pbtlab_run_and_fails_only_when_used():
    kinds: dict[str, int] = {}
    with ray_modules():
        for module_name, name in all_names():
            module = importlib.import_module(module_name)
            exec(f"from {module_name} import {name}", {})  # the import statement a script writes
            kind = check_name(module_name, name, getattr(module, name), f"{module_name}.{name}")
            kinds[kind] = kinds.get(kind, 0) + 1
        for module_name, supported in SUPPORTED.items():
            module = importlib.import_module(module_name)
            assert all(not isinstance(getattr(module, n), UnsupportedName) for n in supported), module_name
    assert sum(kinds.values()) == len(all_names()) > 450
    assert kinds["pbtlab"] >= 50 and kinds["constant"] >= 100, kinds


@pytest.mark.parametrize("mirror, ray_module", [
    ("pbtlab.tune", "ray.tune"), ("pbtlab.tune.schedulers", "ray.tune.schedulers"),
    ("pbtlab.tune.search", "ray.tune.search"), ("pbtlab.tune.stopper", "ray.tune.stopper"),
    ("pbtlab.schedulers", "ray.tune.schedulers"),
])
def test_rays_names_through_pbtlabs_own_namespaces(mirror, ray_module):
    module = importlib.import_module(mirror)
    for name in TABLE["modules"][ray_module]:
        check_name(ray_module, name, getattr(module, name), f"{mirror}.{name}")
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        module.NoSuchThing


def test_asha_hyperband_and_the_median_rule_are_pbtlabs_own():
    from pbtlab.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule

    for scheduler in (ASHAScheduler, HyperBandScheduler, MedianStoppingRule):
        assert not isinstance(scheduler, UnsupportedName)
        assert scheduler(metric="loss", mode="min").describe()["class"].startswith("pbtlab.schedulers.")


@pytest.mark.ray
def test_the_table_is_the_installed_rays():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ray_tune_names.py"), "--print"],
                          capture_output=True, text=True, timeout=300, check=True)
    current = json.loads(done.stdout)
    assert current == TABLE, "rerun python scripts/ray_tune_names.py"
    assert TABLE["ray_version"] == "2.60.0"


def test_pbtlab_is_untouched_by_the_walk():
    assert "ray" not in sys.modules or "stand-in" not in (sys.modules["ray"].__doc__ or "")
    assert pbtlab.tune.ResultGrid is pbtlab.ResultGrid
