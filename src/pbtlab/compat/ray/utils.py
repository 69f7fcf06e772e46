"""``ray.tune.utils.validate_save_restore`` under ``pbtlab run``: check a class trainable's save/restore round trip
before tuning, as Ray's convnet example does.

    >>> from pbtlab import tune
    >>> class Counter(tune.Trainable):
    ...     def setup(self, config):
    ...         self.count = 0
    ...     def step(self):
    ...         self.count += 1
    ...         return {"count": self.count}
    ...     def save_checkpoint(self, checkpoint_dir):
    ...         return {"count": self.count}
    ...     def load_checkpoint(self, checkpoint):
    ...         self.count = checkpoint["count"]
    >>> validate_save_restore(Counter)
    True
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from pbtlab.errors import ConfigError, describe
from pbtlab.trainable import Trainable, is_class_trainable

__all__ = ["validate_save_restore"]


def validate_save_restore(trainable_cls: type[Trainable], config: dict[str, Any] | None = None,
                          num_gpus: int = 0) -> bool:
    """Train one step, save, restore into a fresh object, and check that the iteration count came back (as Ray);
    raises ``ConfigError`` when it did not. ``num_gpus`` is accepted for Ray's signature (trials run here)."""
    if not is_class_trainable(trainable_cls):
        raise ConfigError(f"validate_save_restore(trainable_cls) needs a tune.Trainable subclass, got "
                          f"{describe(trainable_cls)}")
    first, second = trainable_cls(config or {}), trainable_cls(config or {})
    directory = tempfile.mkdtemp(prefix="pbtlab_validate_")
    try:
        for _ in range(3):
            first.train()
        first.save(directory)
        second.restore(directory)
        if second.iteration != first.iteration:
            raise ConfigError(f"{trainable_cls.__name__}: after save and restore the iteration is "
                              f"{second.iteration}, not {first.iteration}")
        second.train()
    finally:
        first.stop()
        second.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return True
