"""Ray's own example scripts, run unmodified from the installed Ray wheel under ``pbtlab run`` (never copied
here), and a Lightning PBT script written the way Ray's docs show (``tests/fixtures/ray_lightning_pbt.py``)."""

from __future__ import annotations

import glob
import json
import os
import re

import pytest

from test_ray_shim import _ray_example, events_of, pbtlab_cli

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def rows_of(trial_dir):
    with open(os.path.join(trial_dir, "result.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.ray
def test_logging_example_runs_with_its_logger_callback_and_trial_name_creator(tmp_path):
    done = pbtlab_cli("run", _ray_example("logging_example.py"), "--smoke-test", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Best hyperparameters: " in done.stdout
    logged = re.findall(r"TestLogger for trial (easy_objective_\w+_123): \{'iterations': 0", done.stdout)
    run_dir = tmp_path / "pbtlab_results" / "hyperband_test"
    assert len(logged) == 5 and sorted(logged) == sorted(p.name for p in run_dir.iterdir() if p.is_dir())


@pytest.mark.ray
def test_custom_checkpointing_example_checkpoints_when_its_callback_asks(tmp_path):
    done = pbtlab_cli("run", _ray_example("custom_checkpointing_with_callback.py"), cwd=tmp_path)  # 20 iterations
    assert done.returncode == 0, done.stderr
    requested = re.findall(r"Callback requesting checkpoint for trial (\w+) at step (\d+)", done.stdout)
    events = events_of(tmp_path / "pbtlab_results" / "smart_checkpoint_test")
    saved = [(e["trial_id"], e["iteration"]) for e in events
             if e["event"] == "checkpoint_saved" and e["reason"] == "requested"]
    assert len(requested) >= 6 and saved == [(trial, int(step)) for trial, step in requested]  # as in Ray
    assert done.stdout.count("Checkpoint saved at step") >= len(requested)


@pytest.mark.ray
@pytest.mark.slow
def test_a_lightning_pbt_script_in_rays_documented_style_runs_unmodified(tmp_path):
    pytest.importorskip("lightning")
    done = pbtlab_cli("run", os.path.join(FIXTURES, "ray_lightning_pbt.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best config {'lr': " in done.stdout
    run_dir = tmp_path / "pbtlab_results" / "ptl_pbt"
    exploits = [e for e in events_of(run_dir) if e["event"] == "exploit"]
    assert exploits
    for exploit in exploits:
        target_rows = rows_of(run_dir / exploit["trial_id"])
        first_after = next(r for r in target_rows if (r["restored_from"] or {}).get("trial_id") == exploit["donor"])
        donor_rows = rows_of(run_dir / exploit["donor"])
        donor_lr = donor_rows[exploit["donor_iteration"] - 1]["optimizer_lr"]
        # Ray's behaviour (Ray issue #36660), kept for Ray's API: the restored optimizer keeps the donor's lr,
        # not the explored one in config. pbtlab's own callback fixes it with optimizer_params (test_lightning.py).
        assert first_after["optimizer_lr"] == pytest.approx(donor_lr)
        assert first_after["config"]["lr"] != pytest.approx(donor_lr)
    checkpoints = glob.glob(str(run_dir / "*" / "checkpoint_*" / "model.ckpt"))
    assert checkpoints  # TuneReportCheckpointCallback(filename="model.ckpt")


# -- Ray's MNIST examples, on an MNIST-format data set made from scikit-learn's digits (nothing is downloaded) -----
def run_mnist_example(tmp_path, name, *args):
    from mnist_digits import torchvision_path, write_mnist_from_digits

    pytest.importorskip("torch")
    home = tmp_path / "home"
    write_mnist_from_digits(str(home / "data"))  # the examples read datasets.MNIST("~/data")
    env_home = {"HOME": str(home)}
    return pbtlab_cli("run", _ray_example(name), *args, cwd=tmp_path, pythonpath=torchvision_path(), env=env_home,
                      timeout=600)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", ["pbt_convnet_function_example.py", "pbt_convnet_example.py"])
def test_rays_mnist_pbt_examples_run_unmodified_with_their_smoke_test(tmp_path, name):
    done = run_mnist_example(tmp_path, name, "--smoke-test")
    assert done.returncode == 0, done.stderr
    events = events_of(tmp_path / "pbtlab_results" / "pbt_test")
    completes = [e for e in events if e["event"] == "trial_complete"]
    assert len(completes) == 4 and all(e["iteration"] <= 5 for e in completes)  # the smoke test's CustomStopper
    if name == "pbt_convnet_function_example.py":
        assert "best model accuracy: " in done.stdout  # eval_best_model read the best checkpoint back


@pytest.mark.ray
@pytest.mark.slow
def test_rays_convnet_pbt_function_example_full_run_exploits(tmp_path):
    done = run_mnist_example(tmp_path, "pbt_convnet_function_example.py")
    assert done.returncode == 0, done.stderr
    events = events_of(tmp_path / "pbtlab_results" / "pbt_test")
    exploits = [e for e in events if e["event"] == "exploit"]
    # perturbation_interval=5. The example is unseeded: in some runs (one CI run of December 4, trials ended at
    # iterations 8-9) no trial is in the bottom quarter at its one check before the stopper ends the run, and
    # nothing is exploited. pbtlab's own seeded convnet runs assert that exploits happen (test_examples_torch).
    assert all(e["target_iteration"] % 5 == 0 for e in exploits)
    tested = float(re.search(r"best model accuracy:  ([0-9.]+)", done.stdout).group(1))
    # The example samples lr and momentum in (0, 1) without a seed: some runs train every trial into divergence
    # (accuracy ~0.1), others reach 0.95. What holds on every run: the model eval_best_model reads back is the
    # best trial's checkpoint, so its accuracy on a random test subset is close to the one reported with that
    # checkpoint. Not the trial's last report: the example checkpoints every 5 iterations and its stopper ends the
    # run as soon as one report passes 0.96, so the last report can come up to 4 iterations after the checkpoint
    # (one fresh-clone run read back 0.60 from the checkpoint of a trial that last reported 0.96).
    from pbtlab.analysis import load_results

    checkpoint = load_results(str(tmp_path / "pbtlab_results" / "pbt_test")).get_best_result().checkpoint.path
    with open(os.path.join(os.path.dirname(checkpoint), "result.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    (reported,) = [r["mean_accuracy"] for r in rows if r["checkpoint_dir_name"] == os.path.basename(checkpoint)]
    assert abs(tested - reported) < 0.2, (tested, reported)


@pytest.mark.ray
@pytest.mark.slow
def test_rays_mnist_trainable_example_runs_with_pbtlabs_asha(tmp_path):
    done = run_mnist_example(tmp_path, "mnist_pytorch_trainable.py", "--smoke-test")
    assert done.returncode == 0, done.stderr
    assert "Best config is:" in done.stdout
    (run_dir,) = glob.glob(str(tmp_path / "pbtlab_results" / "*"))
    assert events_of(run_dir)[0]["scheduler"]["type"] == "AsyncHyperBandScheduler"
