"""The CPU and GPU pool of the executors that run trials side by side (process and Ray): which trial gets which
cores and devices, and the environment its worker starts with.

    >>> pool = ResourcePool(num_cpus=2)
    >>> pool.fits(Resources(cpu=2)), pool.fits(Resources(cpu=3))
    (True, False)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from pbtlab.resources import Resources

__all__ = ["Allocation", "ResourcePool", "THREAD_VARIABLES", "visible_gpu_ids", "worker_environment"]


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """What a trial holds: its resources and, for GPUs, the device ids it was given."""

    resources: Resources
    gpu_ids: tuple[str, ...] = ()


def visible_gpu_ids() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else the NVIDIA devices the
    driver lists (``/proc/driver/nvidia/gpus``), else none."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [part.strip() for part in declared.split(",") if part.strip() and part.strip() != "-1"]
    try:
        return [str(n) for n in range(len(os.listdir("/proc/driver/nvidia/gpus")))]
    except OSError:
        return []


_EPSILON = 1e-9


class ResourcePool:
    """A machine's CPUs and GPU ids, and what each running trial holds of them.

    ``allocate`` never gives more than the pool has: a GPU id is shared only by fractional requests
    whose fractions add up to at most 1. ``prefer`` (GPU ids a trial's worker was started with) must
    be given back exactly, since a running process cannot change its devices.

        >>> pool = ResourcePool(num_cpus=4, gpu_ids=["0", "1"])
        >>> pool.allocate("a", Resources(cpu=1, gpu=0.5)).gpu_ids, pool.allocate("b", Resources(cpu=1, gpu=0.5)).gpu_ids
        (('0',), ('0',))
        >>> pool.fits(Resources(cpu=1, gpu=2))
        False
    """

    def __init__(self, num_cpus: float, gpu_ids: Sequence[str] = ()) -> None:
        self.num_cpus = float(num_cpus)
        self.gpu_ids = [str(g) for g in gpu_ids]
        self.held: dict[str, Allocation] = {}

    def capacity_error(self, resources: Resources) -> str | None:
        """Why a trial asking for ``resources`` can never run here (None when it can, on an idle machine)."""
        if resources.cpu > self.num_cpus + _EPSILON:
            return f"{resources.cpu:g} CPUs, but the executor has {self.num_cpus:g}"
        if resources.gpu > len(self.gpu_ids) + _EPSILON:
            found = f"GPUs {self.gpu_ids}" if self.gpu_ids else "no GPU"
            return f"{resources.gpu:g} GPUs, but the executor has {found}"
        return None

    def _gpu_free(self) -> dict[str, float]:
        free = {g: 1.0 for g in self.gpu_ids}
        for allocation in self.held.values():
            share = allocation.resources.gpu / len(allocation.gpu_ids) if allocation.gpu_ids else 0.0
            for gpu in allocation.gpu_ids:
                free[gpu] = free.get(gpu, 0.0) - share
        return free

    def _choose_gpus(self, gpu: float, prefer: Sequence[str] | None) -> tuple[str, ...] | None:
        if gpu <= 0:
            return ()
        free = self._gpu_free()
        if prefer:
            share = gpu / len(prefer)
            return tuple(prefer) if all(free.get(g, 0.0) + _EPSILON >= share for g in prefer) else None
        if gpu < 1:  # the fullest device that still has room (keeps whole devices free)
            candidates = [g for g in self.gpu_ids if free[g] + _EPSILON >= gpu]
            return (min(candidates, key=lambda g: (free[g], self.gpu_ids.index(g))),) if candidates else None
        whole = [g for g in self.gpu_ids if free[g] >= 1 - _EPSILON]
        return tuple(whole[:int(gpu)]) if len(whole) >= int(gpu) else None

    def fits(self, resources: Resources, prefer: Sequence[str] | None = None) -> bool:
        """Could a trial asking for ``resources`` start now, next to what the running trials hold?"""
        cpus_used = sum(a.resources.cpu for a in self.held.values())
        if cpus_used + resources.cpu > self.num_cpus + _EPSILON:
            return False
        return self._choose_gpus(resources.gpu, prefer) is not None

    def allocate(self, trial_id: str, resources: Resources, prefer: Sequence[str] | None = None) -> Allocation:
        """Hold ``resources`` for ``trial_id`` (what it held before is given back first). When they do not
        fit (the controller started it anyway), the trial gets what is left of the GPUs it prefers."""
        self.held.pop(trial_id, None)
        gpus = self._choose_gpus(resources.gpu, prefer)
        if gpus is None:
            gpus = tuple(prefer or self.gpu_ids[:max(1, int(resources.gpu))])
        allocation = Allocation(resources, gpus)
        self.held[trial_id] = allocation
        return allocation

    def free(self, trial_id: str) -> None:
        self.held.pop(trial_id, None)


#: Environment variables that set a numerical library's thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_environment(allocation: Allocation) -> dict[str, str]:
    """What a trial's worker process runs with: its GPU ids and thread counts equal to its CPUs.

    >>> worker_environment(Allocation(Resources(cpu=2, gpu=0.5), ("1",)))["CUDA_VISIBLE_DEVICES"]
    '1'
    """
    threads = str(allocation.resources.num_threads)
    return {"CUDA_VISIBLE_DEVICES": ",".join(allocation.gpu_ids), **{name: threads for name in THREAD_VARIABLES}}
