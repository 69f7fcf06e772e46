"""The one place the torch workloads import their heavy dependencies (the ``[torch]`` extra), and the
helpers they share.

    >>> from pbtlab.examples._torch import workload_module
    >>> workload_module("numpy").__name__
    'numpy'
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pbtlab._optional import require
from pbtlab.errors import ConfigError

__all__ = ["pb2_bounds", "pb2_like", "pick_device", "state_digest", "torch", "workload_module"]



def workload_module(module: str) -> ModuleType:
    """Import ``module`` or fail with an error that names the ``[torch]`` extra."""
    return require(module, "torch", "the torch examples")


def torch() -> ModuleType:
    """``torch``, imported on first use."""
    return workload_module("torch")


def pick_device(preferred: str | None = "auto") -> str:
    """The device to train on: ``"auto"`` (or None) picks ``"cuda:0"`` when CUDA is available, else ``"cpu"``;
    ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are taken as asked (CUDA must then be available).

        >>> pick_device("cpu")
        'cpu'
    """
    if preferred is None or preferred == "auto":
        return "cuda:0" if torch().cuda.is_available() else "cpu"
    if not isinstance(preferred, str) or not (preferred == "cpu" or preferred == "cuda"
                                              or (preferred.startswith("cuda:") and preferred[5:].isdigit())):
        raise ConfigError(f"config['device'] must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {preferred!r}")
    if preferred.startswith("cuda") and not torch().cuda.is_available():
        raise ConfigError(f"config['device'] is {preferred!r} but CUDA is not available here; use 'auto' or 'cpu'")
    return "cuda:0" if preferred == "cuda" else preferred


def state_digest(state: dict) -> str:
    """A short sha256 of a state dict's tensors (names, shapes, dtypes and bytes), to compare weights.

        >>> import torch
        >>> state_digest({"w": torch.zeros(2)}) == state_digest({"w": torch.zeros(2)})
        True
    """
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def pb2_like(pbt: Any, **overrides: Any) -> Any:
    """PB2 set up like the PBT scheduler ``pbt``: the same time attribute, interval, quantile and synch, and
    ``hyperparam_bounds`` spanning its mutations (:func:`pb2_bounds`); ``overrides`` go to PB2 as they are."""
    from pbtlab.schedulers.pb2 import PB2

    settings: dict[str, Any] = {
        "time_attr": pbt.time_attr, "perturbation_interval": pbt.perturbation_interval,
        "quantile_fraction": pbt.quantile_fraction, "synch": pbt.synch,
        "hyperparam_bounds": pb2_bounds(pbt.hyperparam_mutations)}
    return PB2(**{**settings, **overrides})


def pb2_bounds(mutations: dict[str, Any]) -> dict[str, list[Any]]:
    """PB2's ``hyperparam_bounds`` spanning the same ranges as PBT's ``hyperparam_mutations``: a domain's
    ``[lower, upper]``, a list's ``[min, max]`` (a list of ints stays ints, and PB2 rounds what it picks).

        >>> from pbtlab import tune
        >>> pb2_bounds({"lr": tune.loguniform(1e-3, 0.3), "batch_size": [16, 32, 64, 128]})
        {'lr': [0.001, 0.3], 'batch_size': [16, 128]}
    """
    return {name: [min(domain), max(domain)] if isinstance(domain, list) else [domain.lower, domain.upper]
            for name, domain in mutations.items()}
