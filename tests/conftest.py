"""Shared fixtures: every test gets its own storage directory; logging stays quiet."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def storage(tmp_path):
    """A fresh storage_path for an experiment."""
    return str(tmp_path / "results")


@pytest.fixture(autouse=True)
def _chdir_tmp(tmp_path, monkeypatch):
    """Nothing a test runs writes into the working tree (default storage is ./pbtlab_results)."""
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(session, config, items):
    """Within each module, the tests marked ``ray`` run last (otherwise in their order). Ray's threads run in
    this process from the first such test to the module's end, and a process-executor test after it forks a
    process with those threads: a lock one of them held at the fork stays locked in the child, which then
    hangs (seen once: a worker stuck in ``json.dump`` until the test's timeout)."""
    modules: dict[str, int] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], len(modules))
    items.sort(key=lambda item: (modules[item.nodeid.split("::")[0]], item.get_closest_marker("ray") is not None))


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray for the module; workers import the tests' modules (and pbtlab) through PYTHONPATH."""
    ray = pytest.importorskip("ray", reason="make test installs ray (pip install 'pbtlab[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    here = os.path.dirname(os.path.abspath(__file__))
    # keep the caller's PYTHONPATH after ours, so workers import the same pbtlab as this process
    path = os.pathsep.join(p for p in [here, os.environ.get("PYTHONPATH", "")] if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - hypothesis is a test extra
    pass
else:
    # Seeded like every other test: the same examples on every run (print_blob helps reproduce a failure).
    _hypothesis_settings.register_profile("pbtlab", derandomize=True, deadline=None, print_blob=True)
    _hypothesis_settings.load_profile("pbtlab")


@pytest.fixture
def logger_helpers(monkeypatch):
    """Every loggers' helper process (``LoggerProcess``) started during the test, in order; the helper is
    allowed (``PBTLAB_LOGGER_PROCESS`` unset)."""
    from pbtlab.loggers.offload import LoggerProcess

    started = []
    use = LoggerProcess.use

    def recording_use(self):
        ok = use(self)
        if ok and self not in started:
            started.append(self)
        return ok

    monkeypatch.setattr(LoggerProcess, "use", recording_use)
    monkeypatch.delenv("PBTLAB_LOGGER_PROCESS", raising=False)
    return started
