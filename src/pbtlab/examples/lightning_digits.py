"""PBT of a PyTorch Lightning model on scikit-learn's digits, where the explored learning rate takes effect.

``train_lightning_digits(config)`` is a function trainable: a ``LightningModule`` (a small MLP on the 8x8
digits), a ``Trainer`` that runs one epoch per reported result, and
:class:`~pbtlab.integrations.lightning.TuneReportCheckpointCallback` reporting ``val_accuracy``,
``val_loss`` and the learning rate the optimizer *actually* used (``optimizer_lr``). A restarted trial resumes
with ``trainer.fit(model, ckpt_path=...)`` from ``tune.get_checkpoint()``, the way Ray's docs show.

Resuming restores the donor's optimizer state, including its learning rate (Ray issue #36660). With
``config["apply_config_to_optimizer"]`` (True by default) the callback's ``optimizer_params`` writes the trial's
own ``lr`` and ``momentum`` into the optimizer after the checkpoint loads, so every row's ``optimizer_lr`` is the
lr PBT chose; with False, rows after an exploit show the donor's. Needs ``pip install 'pbtlab[lightning]'``.

    python -m pbtlab.examples.lightning_digits --trials 4 --epochs 12 --seed 0

    >>> from pbtlab import Tuner, TuneConfig, RunConfig
    >>> results = Tuner(train_lightning_digits, param_space=search_space(),
    ...                 tune_config=TuneConfig(num_samples=4, scheduler=pbt_scheduler(), seed=0),
    ...                 run_config=RunConfig(stop={"training_iteration": 12})).fit()  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from pbtlab.examples._torch import torch

__all__ = ["CHECKPOINT_FILE", "DEFAULTS", "main", "make_module", "pbt_scheduler", "search_space",
           "train_lightning_digits"]

#: What each config key falls back to.
DEFAULTS: dict[str, Any] = {"lr": 0.05, "momentum": 0.9, "hidden": 64, "batch_size": 64, "seed": 0,
                            "apply_config_to_optimizer": True}
CHECKPOINT_FILE = "lightning.ckpt"


def _lightning() -> Any:
    try:
        import lightning.pytorch as pl
    except ImportError as error:
        raise ImportError("the Lightning example needs PyTorch Lightning: pip install 'pbtlab[lightning]'") \
            from error
    return pl


def digits_loaders(batch_size: int, seed: int) -> tuple[Any, Any]:
    """Train and validation ``DataLoader``s over the digits (1437 / 360 images, flattened to 64 features)."""
    from pbtlab.examples.convnet import load_digits_split

    torch_ = torch()
    x_train, y_train, x_val, y_val = load_digits_split(0)
    data = torch_.utils.data
    generator = torch_.Generator().manual_seed(seed)
    train = data.DataLoader(data.TensorDataset(x_train.flatten(1), y_train), batch_size=batch_size, shuffle=True,
                            generator=generator)
    val = data.DataLoader(data.TensorDataset(x_val.flatten(1), y_val), batch_size=512)
    return train, val


def make_module(lr: float, momentum: float, hidden: int) -> Any:
    """A ``LightningModule``: 64 -> hidden -> 10 MLP, SGD with ``lr`` and ``momentum``; logs ``val_loss``,
    ``val_accuracy`` and ``optimizer_lr`` (the optimizer's current learning rate) each validation epoch."""
    pl, torch_ = _lightning(), torch()
    nn, functional = torch_.nn, torch_.nn.functional

    class DigitsModule(pl.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.lr, self.momentum = lr, momentum
            self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def training_step(self, batch: Any, batch_index: int) -> Any:
            images, labels = batch
            return functional.cross_entropy(self.net(images), labels)

        def validation_step(self, batch: Any, batch_index: int) -> None:
            images, labels = batch
            logits = self.net(images)
            self.log("val_loss", functional.cross_entropy(logits, labels))
            self.log("val_accuracy", (logits.argmax(dim=1) == labels).float().mean())
            self.log("optimizer_lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]))

        def configure_optimizers(self) -> Any:
            return torch_.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)

    return DigitsModule()


def train_lightning_digits(config: dict[str, Any]) -> None:
    """Function trainable: one Lightning epoch per result, checkpointed through the callback."""
    from pbtlab import tune
    from pbtlab.integrations.lightning import TuneReportCheckpointCallback

    pl, torch_ = _lightning(), torch()
    settings = {**DEFAULTS, **config}
    torch_.manual_seed(int(settings["seed"]))
    train, val = digits_loaders(int(settings["batch_size"]), int(settings["seed"]))
    model = make_module(float(settings["lr"]), float(settings["momentum"]), int(settings["hidden"]))
    optimizer_params = ({"lr": float(settings["lr"]), "momentum": float(settings["momentum"])}
                        if settings["apply_config_to_optimizer"] else None)
    callback = TuneReportCheckpointCallback(
        metrics=["val_accuracy", "val_loss", "optimizer_lr"], filename=CHECKPOINT_FILE, on="validation_end",
        optimizer_params=optimizer_params)
    trainer = pl.Trainer(max_epochs=-1, callbacks=[callback], enable_progress_bar=False, enable_model_summary=False,
                         logger=False, enable_checkpointing=False, accelerator="cpu", devices=1,
                         num_sanity_val_steps=0)
    checkpoint = tune.get_checkpoint()
    ckpt_path = os.path.join(checkpoint.path, CHECKPOINT_FILE) if checkpoint is not None else None
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path)


def search_space() -> dict[str, Any]:
    from pbtlab import tune

    return {"lr": tune.loguniform(1e-3, 0.5), "momentum": tune.uniform(0.5, 0.95), "hidden": 64,
            "batch_size": 64, "seed": 0, "apply_config_to_optimizer": True}


def pbt_scheduler(perturbation_interval: int = 3) -> Any:
    from pbtlab import tune
    from pbtlab.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(
        time_attr="training_iteration", metric="val_accuracy", mode="max", perturbation_interval=perturbation_interval,
        hyperparam_mutations={"lr": tune.loguniform(1e-3, 0.5), "momentum": tune.uniform(0.5, 0.95)}, synch=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage-path", default=None)
    parser.add_argument("--keep-donor-lr", action="store_true",
                        help="Ray's behaviour: do not write the trial's lr into the restored optimizer")
    args = parser.parse_args(argv)
    from pbtlab import RunConfig, TuneConfig, Tuner

    space = {**search_space(), "apply_config_to_optimizer": not args.keep_donor_lr}
    results = Tuner(train_lightning_digits, param_space=space,
                    tune_config=TuneConfig(num_samples=args.trials, scheduler=pbt_scheduler(), seed=args.seed),
                    run_config=RunConfig(name=f"lightning_digits_seed{args.seed}", storage_path=args.storage_path,
                                         stop={"training_iteration": args.epochs}, verbose=1)).fit()
    best = results.get_best_result()
    print(f"best val_accuracy {best.metrics['val_accuracy']:.4f} with lr {best.config['lr']:.4g} "
          f"(optimizer used {best.metrics['optimizer_lr']:.4g}); {len(results.events_of('exploit'))} exploits")


if __name__ == "__main__":
    main()

