"""PyTorch Lightning on pbtlab, with real ``lightning`` on the CPU: the report/checkpoint callbacks (Ray's
arguments), pbtlab's Lightning PBT example on the digits, and the learning rate the optimizer really uses after
each exploit (Ray issue #36660: kept as Ray does by default, fixed by ``optimizer_params``)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

from pbtlab import ConfigError, RunConfig, Tuner, TuneConfig, tune  # noqa: E402
from pbtlab.examples import lightning_digits  # noqa: E402
from pbtlab.integrations.lightning import TuneReportCallback, TuneReportCheckpointCallback  # noqa: E402


def rows_of(run_dir, trial_id):
    with open(os.path.join(run_dir, trial_id, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


def run_example(tmp_path, apply_config_to_optimizer):
    space = {**lightning_digits.search_space(), "apply_config_to_optimizer": apply_config_to_optimizer}
    return Tuner(lightning_digits.train_lightning_digits, param_space=space,
                 tune_config=TuneConfig(num_samples=2, scheduler=lightning_digits.pbt_scheduler(2), seed=3),
                 run_config=RunConfig(storage_path=str(tmp_path), name="lightning", verbose=0,
                                      stop={"training_iteration": 6})).fit()


def rows_after_exploits(results):
    """(exploit event, the target's first row after it) for every exploit of the run."""
    out = []
    for exploit in results.events_of("exploit"):
        rows = rows_of(results.experiment_path, exploit["trial_id"])
        out.append((exploit, rows[exploit["target_iteration"]]))
    return out


@pytest.mark.slow
def test_the_example_trains_with_the_explored_lr_after_every_exploit(tmp_path):
    results = run_example(tmp_path, apply_config_to_optimizer=True)
    after = rows_after_exploits(results)
    assert len(after) == 2  # synchronous PBT, 2 trials, perturbation every 2 of 6 epochs: one exploit per round
    for exploit, row in after:
        assert row["restored_from"]["trial_id"] == exploit["donor"]
        new_lr = row["config"]["lr"]
        assert new_lr != exploit["donor_config"]["lr"]  # explored: perturbed or resampled
        assert row["optimizer_lr"] == pytest.approx(new_lr, rel=1e-6)  # ...and the optimizer really uses it
    for result in results:  # on every row, before and after exploits
        for row in rows_of(results.experiment_path, result.trial_id):
            assert row["optimizer_lr"] == pytest.approx(row["config"]["lr"], rel=1e-6)
    best = results.get_best_result(metric="val_accuracy", mode="max")
    assert best.metrics["val_accuracy"] > 0.85  # it learns the digits in 6 epochs


@pytest.mark.slow
def test_without_optimizer_params_the_donors_lr_survives_the_restore_as_in_ray(tmp_path):
    results = run_example(tmp_path, apply_config_to_optimizer=False)
    after = rows_after_exploits(results)
    assert after
    for exploit, row in after:
        donor_rows = rows_of(results.experiment_path, exploit["donor"])
        donor_lr_used = donor_rows[exploit["donor_iteration"] - 1]["optimizer_lr"]
        assert row["optimizer_lr"] == pytest.approx(donor_lr_used, rel=1e-6)  # Ray issue #36660
        assert row["optimizer_lr"] != pytest.approx(row["config"]["lr"], rel=1e-3)


def test_callback_arguments_are_rays_and_bad_ones_are_named():
    callback = TuneReportCheckpointCallback(metrics="val_loss", filename="x.ckpt", on=["validation_end", "train_end"])
    assert callback._metrics == ["val_loss"] and callback._on == ["validation_end", "train_end"]
    assert TuneReportCallback(metrics={"loss": "val_loss"})._save_checkpoints is False
    with pytest.raises(ConfigError, match="'validation_ends'.*allowed"):
        TuneReportCheckpointCallback(on="validation_ends")
    with pytest.raises(ConfigError, match="optimizer_params"):
        TuneReportCheckpointCallback(optimizer_params=0.1)


def tiny_trainable(config):
    """A Lightning run whose callback reports at two hooks, metrics only (TuneReportCallback)."""
    pl = lightning_digits._lightning()
    train, val = lightning_digits.digits_loaders(256, 0)
    model = lightning_digits.make_module(0.1, 0.9, 16)
    callback = TuneReportCallback(metrics={"acc": "val_accuracy"}, on=["validation_end"])
    trainer = pl.Trainer(max_epochs=2, callbacks=[callback], enable_progress_bar=False, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)


def test_tune_report_callback_reports_each_validation_without_checkpoints(tmp_path):
    results = Tuner(tiny_trainable, tune_config=TuneConfig(metric="acc", mode="max", seed=0),
                    run_config=RunConfig(storage_path=str(tmp_path), name="tiny", verbose=0)).fit()
    rows = rows_of(results.experiment_path, results[0].trial_id)
    assert [r["training_iteration"] for r in rows] == [1, 2]  # the sanity check is not a result
    assert all(set(r) >= {"acc"} and "val_loss" not in r and r["checkpoint_dir_name"] is None for r in rows)
    assert results[0].checkpoint is None
