"""A small convnet on scikit-learn's handwritten digits (8x8 images), as a Ray-style function trainable.

One training iteration is one epoch; each reports ``val_accuracy`` (on a fixed held-out split),
``val_loss`` and ``train_loss``, with a checkpoint of the model and optimizer. PBT tunes lr, momentum,
weight decay, batch size and dropout. Needs the ``[torch]`` extra (torch, scikit-learn).

    >>> from pbtlab import Tuner, TuneConfig, RunConfig
    >>> grid = Tuner(train_convnet, param_space=convnet_search_space(),
    ...              tune_config=TuneConfig(metric="val_accuracy", mode="max", num_samples=4, seed=0,
    ...                                     scheduler=pbt_scheduler()),
    ...              run_config=RunConfig(stop={"training_iteration": 12})).fit()  # doctest: +SKIP

Everything random is seeded from ``config["seed"]`` and the epoch number, so a run repeats exactly, and a
trial restored from a donor's checkpoint continues deterministically. ``config["device"]`` ("auto" by
default) is resolved at run time: CUDA when present, else the CPU. ``config["num_threads"]`` sets
``torch.set_num_threads``.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from typing import Any

from pbtlab.examples._torch import pb2_like, pick_device, state_digest, torch, workload_module

__all__ = [
    "asha_scheduler", "build_model", "checkpoint_digest", "CHECKPOINT_FILE", "convnet_search_space", "ConvnetRun",
    "DEFAULTS", "load_digits_split", "pb2_scheduler", "pbt_scheduler", "pbt_search_space",
    "run_convnet_trainable", "train_convnet",
]

#: The defaults every config key falls back to.
DEFAULTS: dict[str, Any] = {
    "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 64, "dropout": 0.25, "width": 16,
    "seed": 0, "device": "auto", "num_threads": None, "epochs": None, "extra_state_mb": 0, "checkpoint": True,
}
CHECKPOINT_FILE = "convnet.pt"


def _setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, DEFAULTS[key])


@functools.lru_cache(maxsize=2)
def load_digits_split(seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """The digits as float tensors ``(x_train, y_train, x_val, y_val)``: 1437 train, 360 validation images
    of shape (1, 8, 8), scaled to [0, 1]; the split is fixed by ``seed`` (stratified)."""
    torch_ = torch()
    datasets = workload_module("sklearn.datasets")
    model_selection = workload_module("sklearn.model_selection")
    digits = datasets.load_digits()
    images = digits.images.astype("float32") / 16.0
    x_train, x_val, y_train, y_val = model_selection.train_test_split(
        images, digits.target, test_size=0.2, random_state=seed, stratify=digits.target)
    def as_images(array: Any) -> Any:
        return torch_.from_numpy(array).unsqueeze(1).contiguous()

    def as_labels(array: Any) -> Any:
        return torch_.from_numpy(array.astype("int64"))

    return as_images(x_train), as_labels(y_train), as_images(x_val), as_labels(y_val)


def build_model(width: int = 16, dropout: float = 0.25, extra_state_mb: float = 0) -> Any:
    """conv(1->w) - relu - conv(w->2w) - relu - maxpool - dropout - linear(32w->64) - relu - linear(64->10).

    ``extra_state_mb`` adds a non-trainable buffer of that many megabytes to the state dict (to measure the
    cost of checkpointing a large model without the cost of training one)."""
    nn = torch().nn
    model = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(2 * width * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    if extra_state_mb:
        model.register_buffer("ballast", torch().zeros(int(extra_state_mb * 2**20 / 4)))
    return model


class ConvnetRun:
    """The training state of one trial: model, optimizer, data and epoch counter. Used by the trainable
    and by the bare-loop benchmark, so both do the same work.

        >>> run = ConvnetRun({"seed": 1, "device": "cpu"})
        >>> metrics = run.train_epoch()
        >>> 0.0 <= metrics["val_accuracy"] <= 1.0 and run.epoch == 1
        True
    """

    def __init__(self, config: dict[str, Any]) -> None:
        torch_ = torch()
        threads = _setting(config, "num_threads")
        if threads is not None:
            torch_.set_num_threads(int(threads))
        self.config = dict(config)
        self.device = pick_device(_setting(config, "device"))
        self.seed = int(_setting(config, "seed"))
        torch_.manual_seed(self.seed)
        self.model = build_model(int(_setting(config, "width")), float(_setting(config, "dropout")),
                                 float(_setting(config, "extra_state_mb"))).to(self.device)
        self.optimizer = torch_.optim.SGD(self.model.parameters(), lr=float(_setting(config, "lr")))
        self.apply_hyperparameters(config)
        x_train, y_train, x_val, y_val = load_digits_split()
        self.x_train, self.y_train = x_train.to(self.device), y_train.to(self.device)
        self.x_val, self.y_val = x_val.to(self.device), y_val.to(self.device)
        self.epoch = 0

    def apply_hyperparameters(self, config: dict[str, Any]) -> None:
        """Set lr, momentum, weight decay and dropout from ``config`` (after a restore they are the new ones)."""
        for group in self.optimizer.param_groups:
            group["lr"] = float(_setting(config, "lr"))
            group["momentum"] = float(_setting(config, "momentum"))
            group["weight_decay"] = float(_setting(config, "weight_decay"))
        for module in self.model.modules():
            if isinstance(module, torch().nn.Dropout):
                module.p = float(_setting(config, "dropout"))
        self.batch_size = int(_setting(config, "batch_size"))

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training set in a seeded order, then the validation metrics."""
        torch_ = torch()
        functional = torch_.nn.functional
        generator = torch_.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        torch_.manual_seed(self.seed * 100_019 + self.epoch)  # dropout masks
        order = torch_.randperm(len(self.x_train), generator=generator).to(self.device)
        self.model.train()
        total_loss = 0.0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = functional.cross_entropy(self.model(self.x_train[batch]), self.y_train[batch])
            loss.backward()
            self.optimizer.step()
            total_loss += float(loss.detach()) * len(batch)
        self.epoch += 1
        val_loss, val_accuracy = self.evaluate()
        return {"val_accuracy": val_accuracy, "val_loss": val_loss, "train_loss": total_loss / len(order),
                "epoch": self.epoch}

    def evaluate(self) -> tuple[float, float]:
        """(loss, accuracy) on the validation split."""
        torch_ = torch()
        self.model.eval()
        with torch_.no_grad():
            logits = self.model(self.x_val)
            loss = float(torch_.nn.functional.cross_entropy(logits, self.y_val))
            accuracy = float((logits.argmax(dim=1) == self.y_val).float().mean())
        return (loss if math.isfinite(loss) else float("nan")), accuracy

    def save(self, directory: str) -> None:
        torch().save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "epoch": self.epoch}, os.path.join(directory, CHECKPOINT_FILE))

    def load(self, directory: str) -> None:
        """Restore model, optimizer and epoch, then apply this trial's (possibly explored) hyperparameters."""
        state = torch().load(os.path.join(directory, CHECKPOINT_FILE), map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.apply_hyperparameters(self.config)


def run_convnet_trainable(config: dict[str, Any], api: Any) -> None:
    """The trainable's body against a Ray-Tune-like ``api`` (``report``, ``get_checkpoint``, ``Checkpoint``):
    pbtlab's ``tune`` or Ray's. Trains until ``config["epochs"]`` (if set) or until the tuner stops it.
    On the first report after a restore it adds ``restored_weights``: the digest of the weights it loaded."""
    run = ConvnetRun(config)
    restored = None
    checkpoint = api.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            run.load(directory)
        restored = state_digest(run.model.state_dict())
    epochs = _setting(config, "epochs")
    while epochs is None or run.epoch < int(epochs):
        metrics: dict[str, Any] = run.train_epoch()
        if restored is not None:
            metrics["restored_weights"], restored = restored, None
        if not _setting(config, "checkpoint"):
            api.report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="convnet_") as directory:
            run.save(directory)
            api.report(metrics, checkpoint=api.Checkpoint.from_directory(directory))


def train_convnet(config: dict[str, Any]) -> None:
    """The convnet as a pbtlab function trainable (``Tuner(train_convnet, ...)``)."""
    from pbtlab import tune

    run_convnet_trainable(config, tune)


def checkpoint_digest(directory: str) -> str:
    """The digest of the model weights stored in a convnet checkpoint directory (see ``state_digest``)."""
    state = torch().load(os.path.join(directory, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
    return state_digest(state["model"])


def convnet_search_space(**overrides: Any) -> dict[str, Any]:
    """Starting distributions for PBT or random search; each trial gets its own seed."""
    from pbtlab import tune

    space: dict[str, Any] = {
        "lr": tune.loguniform(1e-3, 0.3), "momentum": tune.uniform(0.0, 0.95),
        "weight_decay": tune.loguniform(1e-6, 1e-2), "batch_size": tune.choice([16, 32, 64, 128]),
        "dropout": tune.uniform(0.0, 0.5), "seed": tune.randint(0, 2**31 - 1), "num_threads": 1,
    }
    space.update(overrides)
    return space


def pbt_scheduler(perturbation_interval: int = 2, synch: bool = True, **overrides: Any) -> Any:
    """PBT over the convnet's hyperparameters, every ``perturbation_interval`` epochs."""
    from pbtlab import tune
    from pbtlab.schedulers import PopulationBasedTraining

    settings: dict[str, Any] = dict(
        time_attr="training_iteration",
        perturbation_interval=perturbation_interval, quantile_fraction=0.25, resample_probability=0.25,
        hyperparam_mutations={"lr": tune.loguniform(1e-3, 0.3), "momentum": tune.uniform(0.0, 0.95),
                              "weight_decay": tune.loguniform(1e-6, 1e-2), "batch_size": [16, 32, 64, 128],
                              "dropout": tune.uniform(0.0, 0.5)},
        synch=synch)
    settings.update(overrides)
    return PopulationBasedTraining(**settings)


def pb2_scheduler(perturbation_interval: int = 2, synch: bool = True, **overrides: Any) -> Any:
    """PB2 (a GP bandit picks each explored config) over the ranges :func:`pbt_scheduler` mutates, with
    the same interval and quantile.

        >>> pb2_scheduler().hyperparam_bounds["dropout"]
        [0.0, 0.5]
    """
    return pb2_like(pbt_scheduler(perturbation_interval, synch), **overrides)


def asha_scheduler(max_t: int = 16, grace_period: int = 1, reduction_factor: float = 3,
                   **overrides: Any) -> Any:
    """ASHA (Ray's ``AsyncHyperBandScheduler``) over training epochs: trials sampled from
    :func:`convnet_search_space` run to ``max_t``, unless they fall below the top ``1/reduction_factor`` of the
    trials that reached the same rung (rungs at ``grace_period * reduction_factor ** k``).

        >>> asha_scheduler().milestones(0)
        [1, 3, 9]
    """
    from pbtlab.schedulers import AsyncHyperBandScheduler

    settings: dict[str, Any] = dict(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                                    reduction_factor=reduction_factor)
    settings.update(overrides)
    return AsyncHyperBandScheduler(**settings)


def pbt_search_space(**overrides: Any) -> dict[str, Any]:
    """Alias of :func:`convnet_search_space` (the name the PBT helpers share across workloads)."""
    return convnet_search_space(**overrides)
