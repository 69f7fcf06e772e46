"""PyTorch Lightning on pbtlab: report a Trainer's metrics (and checkpoints) to the tuner from a callback.

``pip install 'pbtlab[lightning]'``. The callbacks have Ray Tune's arguments (``ray.tune.integration.
pytorch_lightning``), so a Ray user's Lightning script keeps its shape::

    from pbtlab import tune
    from pbtlab.integrations.lightning import TuneReportCheckpointCallback

    def train(config):
        model = MyModule(lr=config["lr"])
        callback = TuneReportCheckpointCallback(
            metrics={"loss": "val_loss", "acc": "val_acc"}, filename="trainer.ckpt", on="validation_end",
            optimizer_params={"lr": config["lr"]})          # pbtlab only: see below
        trainer = pl.Trainer(max_epochs=100, callbacks=[callback], enable_progress_bar=False)
        checkpoint = tune.get_checkpoint()
        ckpt_path = os.path.join(checkpoint.path, "trainer.ckpt") if checkpoint else None
        trainer.fit(model, datamodule, ckpt_path=ckpt_path)

**Hyperparameters after a PBT exploit.** ``trainer.fit(ckpt_path=...)`` restores the optimizer's state from
the checkpoint, and that state holds the *donor's* learning rate and momentum. So after an exploit the
optimizer trains on with the donor's values, not the mutated ones in ``config`` (Ray issue #36660; Ray
behaves so, and so does this callback by default). Pass ``optimizer_params={"lr": config["lr"], ...}`` and,
once the checkpoint is loaded (at ``on_train_start``), every param group of every optimizer gets these
values: the explored hyperparameters take effect. Learning-rate schedulers keep their own restored state.

    >>> TuneReportCheckpointCallback(metrics={"acc": "val_acc"}, on=["validation_end", "train_end"])
    TuneReportCheckpointCallback(metrics={'acc': 'val_acc'}, filename='checkpoint', save_checkpoints=True, \
on=['validation_end', 'train_end'], optimizer_params=None)
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pbtlab.checkpoint import Checkpoint
from pbtlab.errors import ConfigError, describe
from pbtlab.session import report

try:
    from lightning.pytorch import Callback
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    try:
        from pytorch_lightning import Callback  # type: ignore[assignment]  # the older package name
    except ModuleNotFoundError:
        raise ImportError("pbtlab.integrations.lightning needs PyTorch Lightning: "
                          "pip install 'pbtlab[lightning]'") from None

__all__ = ["HOOKS", "TuneReportCallback", "TuneReportCheckpointCallback"]

logger = logging.getLogger("pbtlab")

#: The Lightning hooks a callback can report on, without their ``on_`` prefix ("validation_end"...).
HOOKS = frozenset(name[3:] for name, _ in inspect.getmembers(Callback, inspect.isfunction) if name.startswith("on_"))


def _hook_names(on: str | Sequence[str]) -> list[str]:
    hooks = [on] if isinstance(on, str) else list(on)
    for hook in hooks:
        if hook not in HOOKS:
            raise ConfigError(f"TuneReportCheckpointCallback(on=...) names Lightning hooks without 'on_', got "
                              f"{hook!r}; allowed: {sorted(HOOKS)}")
    return hooks


class TuneReportCheckpointCallback(Callback):  # type: ignore[misc]  # lightning is untyped for mypy here
    """Report ``trainer.callback_metrics`` (and a Trainer checkpoint) to the tuner at Lightning hooks.

    ``metrics``: None reports every callback metric; a name or list reports those under the same names; a dict
    maps the reported name to Lightning's. ``filename``: the checkpoint file inside the reported checkpoint
    directory. ``save_checkpoints=False`` reports metrics only. ``on``: the hook(s), without ``on_``.
    ``optimizer_params`` (pbtlab only): values written into every optimizer param group after a checkpoint
    loads, so that the trial's config wins over the restored optimizer state (see the module docstring).
    """

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None, filename: str = "checkpoint",
                 save_checkpoints: bool = True, on: str | Sequence[str] = "validation_end",
                 optimizer_params: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._on = _hook_names(on)
        if isinstance(metrics, str):
            metrics = [metrics]
        if metrics is not None and not isinstance(metrics, (Mapping, Sequence)):
            raise ConfigError(f"TuneReportCheckpointCallback(metrics=...) must be a name, a list of names or a "
                              f"dict, got {describe(metrics)}")
        if not isinstance(filename, str) or not filename or os.sep in filename:
            raise ConfigError(f"TuneReportCheckpointCallback(filename=...) must be a file name, got "
                              f"{describe(filename)}")
        if optimizer_params is not None and not isinstance(optimizer_params, Mapping):
            raise ConfigError(f"TuneReportCheckpointCallback(optimizer_params=...) must be a dict such as "
                              f"{{'lr': config['lr']}}, got {describe(optimizer_params)}")
        self._metrics = metrics
        self._filename = filename
        self._save_checkpoints = bool(save_checkpoints)
        self._optimizer_params = dict(optimizer_params) if optimizer_params is not None else None

    def __repr__(self) -> str:
        metrics = dict(self._metrics) if isinstance(self._metrics, Mapping) else self._metrics
        return (f"{type(self).__name__}(metrics={metrics!r}, filename={self._filename!r}, "
                f"save_checkpoints={self._save_checkpoints}, on={self._on!r}, "
                f"optimizer_params={self._optimizer_params!r})")

    # -- what is reported -----------------------------------------------------------------------
    def _report_dict(self, trainer: Any) -> dict[str, float]:
        logged = trainer.callback_metrics
        if not self._metrics:
            return {name: value.item() for name, value in logged.items()}
        names = self._metrics.items() if isinstance(self._metrics, Mapping) else ((m, m) for m in self._metrics)
        out = {}
        for reported_as, lightning_name in names:
            if lightning_name in logged:
                out[reported_as] = logged[lightning_name].item()
            else:
                logger.warning(f"[pbtlab] TuneReportCheckpointCallback: metric {lightning_name!r} is not in "
                               f"trainer.callback_metrics ({sorted(logged)})")
        return out

    @contextlib.contextmanager
    def _checkpoint(self, trainer: Any) -> Iterator[Checkpoint | None]:
        if not self._save_checkpoints:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="pbtlab_lightning_") as folder:
            trainer.save_checkpoint(os.path.join(folder, self._filename))
            yield Checkpoint.from_directory(folder)

    def _handle(self, trainer: Any) -> None:
        if trainer.sanity_checking:  # Lightning's validation dry run before training: not a result
            return
        metrics = self._report_dict(trainer)
        if not metrics:
            return
        with self._checkpoint(trainer) as checkpoint:
            report(metrics, checkpoint=checkpoint)

    # -- pbtlab's fix for restored optimizer state ------------------------------------------------
    def _apply_optimizer_params(self, trainer: Any) -> None:
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.update(self._optimizer_params)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._optimizer_params:
            self._apply_optimizer_params(trainer)  # after fit(ckpt_path=...) restored the optimizers
        if "train_start" in self._on:
            self._handle(trainer)


def _reporting_hook(hook: str) -> Any:
    def on_hook(self: TuneReportCheckpointCallback, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if hook in self._on:
            self._handle(trainer)

    on_hook.__name__ = f"on_{hook}"
    return on_hook


for _hook in sorted(HOOKS - {"train_start"}):
    setattr(TuneReportCheckpointCallback, f"on_{_hook}", _reporting_hook(_hook))


class TuneReportCallback(TuneReportCheckpointCallback):
    """Report metrics only, no checkpoints (Ray's deprecated name for ``save_checkpoints=False``)."""

    def __init__(self, metrics: str | Sequence[str] | Mapping[str, str] | None = None,
                 on: str | Sequence[str] = "validation_end") -> None:
        super().__init__(metrics=metrics, save_checkpoints=False, on=on)
