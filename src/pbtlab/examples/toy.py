"""The PBT paper's toy problem (Jaderberg et al. 2017, Figure 2), exactly as in the tutorial.

Maximize ``Q(theta) = 1.2 - (3/4 theta0^2 + theta1^2)`` while only ascending the surrogate
``Qhat(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2)``, whose hyperparameters ``h`` PBT tunes.

    >>> round(float(Q(get_init_theta())), 4)
    -0.2175
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

import numpy as np

from pbtlab import tune

__all__ = ["get_init_theta", "grad_Qhat", "Q", "Q_batch", "Qhat", "train_func"]


def Q(theta: np.ndarray) -> Any:
    """The true reward: an elliptic paraboloid with its maximum 1.2 at (0, 0)."""
    return 1.2 - (3 / 4 * theta[0] ** 2 + theta[1] ** 2)


def Qhat(theta: np.ndarray, h: np.ndarray) -> Any:
    """The surrogate reward the trainer ascends, biased by the hyperparameters ``h``."""
    return 1.2 - (h[0] * theta[0] ** 2 + h[1] * theta[1] ** 2)


def grad_Qhat(theta: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``Qhat`` (with the tutorial's 3/4 factor on the first coordinate)."""
    theta_grad = -2 * h * theta
    theta_grad[0] *= 3 / 4
    h_grad = -np.square(theta)
    h_grad[0] *= 3 / 4
    return {"theta": theta_grad, "h": h_grad}


def get_init_theta() -> np.ndarray:
    """The starting parameters, theta = [0.9, 0.9]."""
    return np.array([0.9, 0.9])


def Q_batch(theta: np.ndarray) -> np.ndarray:
    """``Q`` for a (B, 2) array of parameters (used for contour plots)."""
    return 1.2 - (3 / 4 * theta[:, 0] ** 2 + theta[:, 1] ** 2)


def train_func(config: dict[str, Any]) -> None:
    """The tutorial's function trainable: gradient ascent on ``Qhat``, checkpointing every few steps."""
    h0 = config.get("h0")
    h1 = config.get("h1")
    h = np.array([h0, h1]).astype(float)

    lr = config.get("lr")
    train_step = 1
    checkpoint_interval = config.get("checkpoint_interval", 1)

    theta = get_init_theta()

    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "checkpoint.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        theta = checkpoint_dict["theta"]
        last_step = checkpoint_dict["train_step"]
        train_step = last_step + 1

    while True:
        param_grads = grad_Qhat(theta, h)
        theta_grad = np.asarray(param_grads["theta"])
        theta = theta + lr * theta_grad

        result = {
            "Q": Q(theta),
            "theta0": theta[0],
            "theta1": theta[1],
            "h0": h0,
            "h1": h1,
            "train_step": train_step,
        }

        should_checkpoint = train_step % checkpoint_interval == 0
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            checkpoint = None
            if should_checkpoint:
                checkpoint_dict = {"h": h, "train_step": train_step, "theta": theta}
                with open(os.path.join(temp_checkpoint_dir, "checkpoint.pkl"), "wb") as f:
                    pickle.dump(checkpoint_dict, f)
                checkpoint = tune.Checkpoint.from_directory(temp_checkpoint_dir)
            tune.report(result, checkpoint=checkpoint)

        train_step += 1
