"""Checkpoints inside a run directory: where a trial's checkpoint lives, and how it gets there.

    >>> ref = CheckpointRef(trial_id="t0", path="/run/t0/checkpoint_000003", iteration=4, time_total_s=1.5, index=3)
    >>> CheckpointRef.from_dict(ref.to_dict()) == ref
    True
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from typing import Any

__all__ = ["CheckpointRef", "persist_directory"]


@dataclasses.dataclass(frozen=True, slots=True)
class CheckpointRef:
    """A persisted checkpoint of a trial, with the clock values it was taken at."""

    trial_id: str
    path: str
    iteration: int
    time_total_s: float
    index: int
    score: float | None = None  # CheckpointConfig(checkpoint_score_attribute)'s value when it was taken

    def to_dict(self) -> dict[str, Any]:
        data = {"trial_id": self.trial_id, "path": self.path, "iteration": self.iteration,
                "time_total_s": self.time_total_s, "index": self.index}
        if self.score is not None:
            data["score"] = self.score
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointRef:
        return cls(**data)


def persist_directory(source: str, target_dir: str, name: str) -> str:
    """Copy ``source`` to ``target_dir/name`` atomically (copy to a hidden name, then rename)."""
    final = os.path.join(target_dir, name)
    staging = os.path.join(target_dir, f".tmp_{name}_{os.getpid()}")
    if os.path.exists(staging):
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(staging, final)
    return final
