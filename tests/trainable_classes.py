"""Class trainables for tests/test_trainable.py, in a module of their own so Ray's workers can import them."""

from __future__ import annotations

import json
import os

from pbtlab import tune

BUILT: list[tuple[str, float]] = []  # (trial id, lr) of every object built, in this process
RESETS: list[float] = []


class Quadratic(tune.Trainable):
    """Gradient steps on -(x - 3)^2: the score rises while lr > 0; its state is x."""

    def setup(self, config):
        self.x = 0.0
        BUILT.append((self.trial_id, config["lr"]))

    def step(self):
        self.x += self.config["lr"] * 2 * (3.0 - self.x)
        return {"score": -((self.x - 3.0) ** 2), "x": self.x, "seen_iteration": self.iteration}

    def save_checkpoint(self, checkpoint_dir):
        return {"x": self.x}

    def load_checkpoint(self, checkpoint):
        self.x = checkpoint["x"]


class Reusable(Quadratic):
    def reset_config(self, new_config):
        RESETS.append(new_config["lr"])
        self.config = new_config
        return True


class DirectoryCheckpoints(Quadratic):
    def save_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, "x.json"), "w") as handle:
            json.dump({"x": self.x, "logdir": self.logdir, "name": self.trial_name}, handle)

    def load_checkpoint(self, checkpoint):
        assert isinstance(checkpoint, str) and os.path.isdir(checkpoint)
        with open(os.path.join(checkpoint, "x.json")) as handle:
            self.x = json.load(handle)["x"]


class SlowSteps(Quadratic):
    """Quadratic with steps that take a while, so a trial is inside one when the run is stopped."""

    def step(self):
        import time

        time.sleep(0.3)
        return super().step()


#: (trial id, iteration, inode of x.json) for each checkpoint InodeCheckpoints wrote, in this process
WRITTEN: list[tuple[str, int, int]] = []


class InodeCheckpoints(DirectoryCheckpoints):
    """Records the inode of every checkpoint file it writes, so a test can tell a move from a copy."""

    def save_checkpoint(self, checkpoint_dir):
        super().save_checkpoint(checkpoint_dir)
        WRITTEN.append((self.trial_id, self.iteration, os.stat(os.path.join(checkpoint_dir, "x.json")).st_ino))


class ElsewhereCheckpoints(DirectoryCheckpoints):
    """save_checkpoint writes into a folder of its own and returns that path (Ray allows it)."""

    def save_checkpoint(self, checkpoint_dir):
        own = os.path.join(self.logdir, "own_checkpoint")
        os.makedirs(own, exist_ok=True)
        super().save_checkpoint(own)
        return own
