"""An advantage actor-critic agent (REINFORCE with a learned baseline) on gymnasium's CartPole-v1,
as a Ray-style function trainable: PBT's home ground, where good schedules beat fixed settings.

One training iteration collects ``episodes_per_iteration`` whole episodes with the current policy and makes
one gradient step on them; it reports ``episode_return_mean`` (the mean undiscounted return of those
episodes, at most 500) and a checkpoint of the networks and optimizer. PBT tunes lr, the entropy
coefficient, gamma and the value-loss coefficient. Needs the ``[torch]`` extra (torch, gymnasium).

    >>> from pbtlab import Tuner, TuneConfig, RunConfig
    >>> grid = Tuner(train_cartpole, param_space=cartpole_search_space(),
    ...              tune_config=TuneConfig(metric="episode_return_mean", mode="max", num_samples=4, seed=0,
    ...                                     scheduler=pbt_scheduler()),
    ...              run_config=RunConfig(stop={"training_iteration": 30})).fit()  # doctest: +SKIP

Episodes start from seeds derived from ``config["seed"]`` and the iteration number, and actions are
sampled from a generator seeded the same way, so a run repeats exactly. The device is picked at run time.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from pbtlab.examples._torch import pb2_like, pick_device, state_digest, torch, workload_module

__all__ = [
    "asha_scheduler", "build_agent", "cartpole_search_space", "CartPoleRun", "checkpoint_digest",
    "CHECKPOINT_FILE", "DEFAULTS", "ENV_ID", "pb2_scheduler", "pbt_scheduler", "pbt_search_space",
    "run_cartpole_trainable", "train_cartpole",
]

DEFAULTS: dict[str, Any] = {
    "lr": 0.01, "gamma": 0.99, "entropy_coef": 0.01, "value_coef": 0.5, "episodes_per_iteration": 8,
    "hidden": 64, "seed": 0, "device": "auto", "num_threads": None, "iterations": None, "max_episode_steps": 500,
}
CHECKPOINT_FILE = "agent.pt"
ENV_ID = "CartPole-v1"


def _setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, DEFAULTS[key])


def build_agent(hidden: int = 64) -> Any:
    """Separate policy and value MLPs (2 hidden layers each): ``agent(obs) -> (logits[2], value)``."""
    nn = torch().nn

    def mlp(outputs: int) -> Any:
        return nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                             nn.Linear(hidden, outputs))

    class ActorCritic(nn.Module):  # type: ignore[name-defined]  # nn is torch.nn, imported at run time
        def __init__(self) -> None:
            super().__init__()
            self.policy = mlp(2)
            self.value = mlp(1)

        def forward(self, obs: Any) -> tuple[Any, Any]:
            return self.policy(obs), self.value(obs).squeeze(-1)

    return ActorCritic()


class CartPoleRun:
    """The training state of one trial: agent, optimizer, environment and iteration counter.

        >>> run = CartPoleRun({"seed": 3, "device": "cpu", "episodes_per_iteration": 2})
        >>> metrics = run.train_iteration()
        >>> metrics["episodes"], run.iteration, 8 <= metrics["episode_return_mean"] <= 500
        (2, 1, True)
    """

    def __init__(self, config: dict[str, Any]) -> None:
        torch_ = torch()
        gymnasium = workload_module("gymnasium")
        threads = _setting(config, "num_threads")
        if threads is not None:
            torch_.set_num_threads(int(threads))
        self.config = dict(config)
        self.device = pick_device(_setting(config, "device"))
        self.seed = int(_setting(config, "seed"))
        torch_.manual_seed(self.seed)
        self.agent = build_agent(int(_setting(config, "hidden"))).to(self.device)
        self.optimizer = torch_.optim.Adam(self.agent.parameters(), lr=float(_setting(config, "lr")))
        self.env = gymnasium.make(ENV_ID, max_episode_steps=int(_setting(config, "max_episode_steps")))
        self.iteration = 0
        self.apply_hyperparameters(config)

    def apply_hyperparameters(self, config: dict[str, Any]) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(_setting(config, "lr"))
        self.gamma = float(_setting(config, "gamma"))
        self.entropy_coef = float(_setting(config, "entropy_coef"))
        self.value_coef = float(_setting(config, "value_coef"))
        self.episodes = int(_setting(config, "episodes_per_iteration"))

    def _collect(self) -> tuple[list[Any], list[int], list[float], list[int]]:
        """Run whole episodes with the current policy: observations, actions, rewards, episode lengths."""
        torch_ = torch()
        generator = torch_.Generator().manual_seed(self.seed * 100_003 + self.iteration)
        observations: list[Any] = []
        actions: list[int] = []
        rewards: list[float] = []
        lengths: list[int] = []
        self.agent.eval()
        for episode in range(self.episodes):
            obs, _ = self.env.reset(seed=(self.seed * 7919 + self.iteration * 1009 + episode) % 2**31)
            length = 0
            while True:
                obs_tensor = torch_.as_tensor(obs, dtype=torch_.float32)
                with torch_.no_grad():
                    logits, _ = self.agent(obs_tensor.to(self.device))
                probs = torch_.softmax(logits.to("cpu"), dim=-1)
                action = int(torch_.multinomial(probs, 1, generator=generator))
                observations.append(obs_tensor)
                actions.append(action)
                obs, reward, terminated, truncated, _ = self.env.step(action)
                rewards.append(float(reward))
                length += 1
                if terminated or truncated:
                    break
            lengths.append(length)
        return observations, actions, rewards, lengths

    def train_iteration(self) -> dict[str, Any]:
        """Collect episodes, then one actor-critic step on discounted returns-to-go."""
        torch_ = torch()
        observations, actions, rewards, lengths = self._collect()
        returns: list[float] = []
        end = len(rewards)
        for length in reversed(lengths):  # returns-to-go within each episode
            running = 0.0
            chunk = []
            for reward in reversed(rewards[end - length:end]):
                running = reward + self.gamma * running
                chunk.append(running)
            returns[:0] = reversed(chunk)
            end -= length
        self.agent.train()
        obs = torch_.stack(observations).to(self.device)
        logits, values = self.agent(obs)
        log_probs = torch_.log_softmax(logits, dim=-1)
        taken = log_probs.gather(1, torch_.as_tensor(actions, device=self.device).unsqueeze(1)).squeeze(1)
        target = torch_.as_tensor(returns, dtype=torch_.float32, device=self.device)
        advantage = (target - values).detach()
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8) if len(advantage) > 1 else advantage
        entropy = -(log_probs.exp() * log_probs).sum(dim=1).mean()
        policy_loss = -(taken * advantage).mean()
        value_loss = torch_.nn.functional.mse_loss(values, target)
        loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch_.nn.utils.clip_grad_norm_(self.agent.parameters(), 10.0)
        diverged = not bool(torch_.isfinite(loss)) or not bool(torch_.isfinite(grad_norm))
        if not diverged:  # a non-finite step would poison the weights: skip it (and report it)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.iteration += 1
        return {"episode_return_mean": sum(lengths) / len(lengths), "episode_return_max": max(lengths),
                "episodes": len(lengths), "env_steps": len(rewards), "entropy": float(entropy.detach()), "skipped_update": int(diverged),
                "iteration": self.iteration}

    def save(self, directory: str) -> None:
        torch().save({"agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "iteration": self.iteration}, os.path.join(directory, CHECKPOINT_FILE))

    def load(self, directory: str) -> None:
        state = torch().load(os.path.join(directory, CHECKPOINT_FILE), map_location=self.device, weights_only=True)
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.apply_hyperparameters(self.config)


def run_cartpole_trainable(config: dict[str, Any], api: Any) -> None:
    """The trainable's body against a Ray-Tune-like ``api`` (pbtlab's ``tune`` or Ray's). On the first report
    after a restore it adds ``restored_weights``: the digest of the weights it loaded."""
    run = CartPoleRun(config)
    restored = None
    checkpoint = api.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            run.load(directory)
        restored = state_digest(run.agent.state_dict())
    iterations = _setting(config, "iterations")
    while iterations is None or run.iteration < int(iterations):
        metrics: dict[str, Any] = run.train_iteration()
        if restored is not None:
            metrics["restored_weights"], restored = restored, None
        with tempfile.TemporaryDirectory(prefix="cartpole_") as directory:
            run.save(directory)
            api.report(metrics, checkpoint=api.Checkpoint.from_directory(directory))


def train_cartpole(config: dict[str, Any]) -> None:
    """The CartPole agent as a pbtlab function trainable (``Tuner(train_cartpole, ...)``)."""
    from pbtlab import tune

    run_cartpole_trainable(config, tune)


def checkpoint_digest(directory: str) -> str:
    """The digest of the agent's weights stored in a checkpoint directory (see ``state_digest``)."""
    state = torch().load(os.path.join(directory, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
    return state_digest(state["agent"])


def cartpole_search_space(**overrides: Any) -> dict[str, Any]:
    """Starting distributions for PBT or random search; each trial gets its own seed."""
    from pbtlab import tune

    space: dict[str, Any] = {
        "lr": tune.loguniform(1e-4, 3e-2), "entropy_coef": tune.loguniform(1e-4, 0.1),
        "gamma": tune.uniform(0.9, 0.999), "value_coef": tune.uniform(0.1, 1.0),
        "seed": tune.randint(0, 2**31 - 1), "num_threads": 1,
    }
    space.update(overrides)
    return space


def pbt_scheduler(perturbation_interval: int = 4, synch: bool = True, **overrides: Any) -> Any:
    """PBT over the agent's hyperparameters, every ``perturbation_interval`` iterations."""
    from pbtlab import tune
    from pbtlab.schedulers import PopulationBasedTraining

    settings: dict[str, Any] = dict(
        time_attr="training_iteration", perturbation_interval=perturbation_interval, quantile_fraction=0.25,
        resample_probability=0.25,
        hyperparam_mutations={"lr": tune.loguniform(1e-4, 3e-2), "entropy_coef": tune.loguniform(1e-4, 0.1),
                              "gamma": tune.uniform(0.9, 0.999), "value_coef": tune.uniform(0.1, 1.0)},
        synch=synch)
    settings.update(overrides)
    return PopulationBasedTraining(**settings)


def pb2_scheduler(perturbation_interval: int = 4, synch: bool = True, **overrides: Any) -> Any:
    """PB2 (a GP bandit picks each explored config) over the ranges :func:`pbt_scheduler` mutates, with
    the same interval and quantile.

        >>> pb2_scheduler().hyperparam_bounds["gamma"]
        [0.9, 0.999]
    """
    return pb2_like(pbt_scheduler(perturbation_interval, synch), **overrides)


def asha_scheduler(max_t: int = 30, grace_period: int = 2, reduction_factor: float = 3,
                   **overrides: Any) -> Any:
    """ASHA (Ray's ``AsyncHyperBandScheduler``) over training iterations: trials sampled from
    :func:`cartpole_search_space` run to ``max_t``, unless they fall below the top ``1/reduction_factor`` of the
    trials that reached the same rung (rungs at ``grace_period * reduction_factor ** k``).

        >>> asha_scheduler().milestones(0)
        [2, 6, 18]
    """
    from pbtlab.schedulers import AsyncHyperBandScheduler

    settings: dict[str, Any] = dict(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                                    reduction_factor=reduction_factor)
    settings.update(overrides)
    return AsyncHyperBandScheduler(**settings)


def pbt_search_space(**overrides: Any) -> dict[str, Any]:
    """Alias of :func:`cartpole_search_space` (the name the PBT helpers share across workloads)."""
    return cartpole_search_space(**overrides)
