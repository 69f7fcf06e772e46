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


try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - hypothesis is a test extra
    pass
else:
    # Seeded like every other test: the same examples on every run (print_blob helps reproduce a failure).
    _hypothesis_settings.register_profile("pbtlab", derandomize=True, deadline=None, print_blob=True)
    _hypothesis_settings.load_profile("pbtlab")
