"""The tutorial's training and tuning code, verbatim but for its import lines (and no ray.init)."""

import os
import pickle
import tempfile

import numpy as np

from pbtlab import tune, Tuner, TuneConfig
from pbtlab.schedulers import PopulationBasedTraining
from pbtlab.examples.toy import get_init_theta


def Q(theta):
    # equation for an elliptic paraboloid with a center at (0, 0, 1.2)
    return 1.2 - (3 / 4 * theta[0] ** 2 + theta[1] ** 2)


def Qhat(theta, h):
    return 1.2 - (h[0] * theta[0] ** 2 + h[1] * theta[1] ** 2)


def grad_Qhat(theta, h):
    theta_grad = -2 * h * theta
    theta_grad[0] *= 3 / 4
    h_grad = -np.square(theta)
    h_grad[0] *= 3 / 4
    return {"theta": theta_grad, "h": h_grad}


def train_func(config):
    # Load the hyperparam config passed in by the Tuner
    h0 = config.get("h0")
    h1 = config.get("h1")
    h = np.array([h0, h1]).astype(float)

    lr = config.get("lr")
    train_step = 1
    checkpoint_interval = config.get("checkpoint_interval", 1)

    # Initialize the model parameters
    theta = get_init_theta()

    # Load a checkpoint if it exists
    # This checkpoint could be a trial's own checkpoint to resume,
    # or another trial's checkpoint placed by PBT that we will exploit
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "checkpoint.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        # Load in model (theta)
        theta = checkpoint_dict["theta"]
        last_step = checkpoint_dict["train_step"]
        train_step = last_step + 1

    # Main training loop (trial stopping is configured later)
    while True:
        # Perform gradient ascent steps
        param_grads = grad_Qhat(theta, h)
        theta_grad = np.asarray(param_grads["theta"])
        theta = theta + lr * theta_grad

        # Define which custom metrics we want in our trial result
        result = {
            "Q": Q(theta),
            "theta0": theta[0],
            "theta1": theta[1],
            "h0": h0,
            "h1": h1,
            "train_step": train_step,
        }

        # Checkpoint every `checkpoint_interval` steps
        should_checkpoint = train_step % checkpoint_interval == 0
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            checkpoint = None
            if should_checkpoint:
                checkpoint_dict = {
                    "h": h,
                    "train_step": train_step,
                    "theta": theta,
                }
                with open(
                    os.path.join(temp_checkpoint_dir, "checkpoint.pkl"), "wb"
                ) as f:
                    pickle.dump(checkpoint_dict, f)
                checkpoint = tune.Checkpoint.from_directory(temp_checkpoint_dir)

            # Report metric for this training iteration, and include the
            # trial checkpoint that contains the current parameters if we
            # saved it this train step
            tune.report(result, checkpoint=checkpoint)

        train_step += 1


def run_pbt_2(seed=None, storage_path=None, verbose=None, executor=None):
    """The tutorial's 2-trial PBT cell (plus seed, storage and executor, which the tutorial leaves default)."""
    perturbation_interval = 4

    pbt_scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=perturbation_interval,
        metric="Q",
        mode="max",
        quantile_fraction=0.5,
        resample_probability=0.5,
        hyperparam_mutations={
            "lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
            "h0": tune.uniform(0.0, 1.0),
            "h1": tune.uniform(0.0, 1.0),
        },
        synch=True,
    )

    tuner = Tuner(
        train_func,
        param_space={
            "lr": 0.05,
            "h0": tune.grid_search([0.0, 1.0]),
            "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
            "num_training_iterations": 100,
            # Match `checkpoint_interval` with `perturbation_interval`
            "checkpoint_interval": perturbation_interval,
        },
        tune_config=TuneConfig(
            num_samples=1,
            # Set the PBT scheduler in this config
            scheduler=pbt_scheduler,
            seed=seed,
        ),
        run_config=tune.RunConfig(
            stop={"training_iteration": 100},
            failure_config=tune.FailureConfig(max_failures=3),
            storage_path=storage_path,
            verbose=verbose,
            executor=executor,
        ),
    )

    pbt_results = tuner.fit()
    return pbt_results, pbt_scheduler


def run_grid(seed=None, storage_path=None, verbose=None):
    """The tutorial's grid-search baseline cell."""
    tuner = Tuner(
        train_func,
        param_space={
            "lr": tune.qloguniform(1e-2, 1e-1, 5e-3),
            "h0": tune.grid_search([0.0, 1.0]),
            "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
        },
        tune_config=tune.TuneConfig(
            num_samples=1,
            metric="Q",
            mode="max",
            seed=seed,
        ),
        run_config=tune.RunConfig(
            stop={"training_iteration": 100},
            failure_config=tune.FailureConfig(max_failures=3),
            storage_path=storage_path,
            verbose=verbose,
        ),
    )

    grid_results = tuner.fit()
    if grid_results.errors:
        raise RuntimeError
    return grid_results


def run_pbt_4(seed=None, storage_path=None, verbose=None, executor=None):
    """The tutorial's 4-trial PBT cell."""
    perturbation_interval = 4
    pbt_scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=perturbation_interval,
        quantile_fraction=0.5,
        resample_probability=0.5,
        hyperparam_mutations={
            "lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
            "h0": tune.uniform(0.0, 1.0),
            "h1": tune.uniform(0.0, 1.0),
        },
        synch=True,
    )

    tuner = Tuner(
        train_func,
        param_space={
            "lr": tune.qloguniform(5e-3, 1e-1, 5e-4),
            "h0": tune.grid_search([0.0, 1.0, 0.01, 0.99]),  # 4 trials
            "h1": tune.sample_from(lambda spec: 1.0 - spec.config["h0"]),
            "num_training_iterations": 100,
            "checkpoint_interval": perturbation_interval,
        },
        tune_config=TuneConfig(
            num_samples=1,
            metric="Q",
            mode="max",
            # Set the PBT scheduler in this config
            scheduler=pbt_scheduler,
            seed=seed,
        ),
        run_config=tune.RunConfig(
            stop={"training_iteration": 100},
            failure_config=tune.FailureConfig(max_failures=3),
            storage_path=storage_path,
            verbose=verbose,
            executor=executor,
        ),
    )

    pbt_4_results = tuner.fit()
    return pbt_4_results, pbt_scheduler
