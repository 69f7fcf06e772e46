"""PBT's strategies as small objects: how a trial chooses whom to copy (exploit), how the copied config
changes (explore), and how a perturbed value stays inside its domain (bounds).

``PopulationBasedTraining`` takes them as objects or by their names (Ray's options and pbtlab's own):

=====================================  ========================================================
``exploit=``                           object
``True`` / ``"truncation"`` (default)  ``Truncation()``
``"binary_tournament"``                ``BinaryTournament()``
``"ttest"`` (+ ``ttest_window``, ...)  ``TTest(window=10, significance=0.05)``
``False``                              None: explore-only (a trial perturbs its own config)
``explore=``
``True`` / ``"perturb"`` (default)     ``Perturb()``
``"resample"``                         ``Resample()``
``False``                              None: exploit-only (copy without perturbing)
``perturb_bounds=``
``None`` (default, Ray's)              None: a perturbed value may leave its domain
``"clip"`` (or ``clip_to_domain``)     ``Clip()``
``"reflect"``                          ``Reflect()``
=====================================  ========================================================

An exploit strategy of your own subclasses :class:`ExploitStrategy`: at each check of a trial it gets
the :class:`Standings` and the run's generator, and names the donor to copy, or None:

    >>> import numpy as np
    >>> class CopyTheBest(ExploitStrategy):
    ...     '''The bottom quantile copies the best trial.'''
    ...     name = "copy_the_best"
    ...     def choose_donor(self, trial_id, standings, rng):
    ...         return standings.upper[-1] if trial_id in standings.lower else None
    >>> members = {tid: MemberState(tid, last_score=score) for tid, score in [("t0", 1.0), ("t1", 2.0), ("t2", 0.0)]}
    >>> standings = Standings(["t2"], ["t0", "t1"], members, ["t0", "t1", "t2"])
    >>> CopyTheBest().choose_donor("t2", standings, np.random.default_rng(0))
    't1'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pbtlab import lazy_dataclass
from pbtlab.errors import ConfigError, describe
from pbtlab.schedulers.base import HyperparamChange
from pbtlab.schedulers.explore import BOUNDS, Clip, Mutation, PerturbBounds, Reflect, bounds_policy, perturb_config
from pbtlab.schedulers.ranking import MemberState
from pbtlab.schedulers.statistics import welch_t_test

__all__ = [
    "BOUNDS", "BinaryTournament", "Clip", "ExploitStrategy", "ExploreStrategy", "Perturb", "PerturbBounds",
    "Reflect", "Resample", "Standings", "TTest", "Truncation", "bounds_policy", "exploit_strategy",
    "explore_strategy",
]


class Standings:
    """The population at a trial's check, as an exploit strategy sees it.

    ``lower`` and ``upper`` are the bottom and top ``quantile_fraction`` of the ranked live trials (worst
    first in both). Scores are sign-adjusted (higher is better) and are those of each trial's last check;
    a NaN or infinite score cannot be ranked.
    """

    __slots__ = ("_members", "_order", "lower", "upper")

    def __init__(self, lower: Sequence[str], upper: Sequence[str], members: Mapping[str, MemberState],
                 order: Sequence[str]) -> None:
        self.lower = lower
        self.upper = upper
        self._members = members
        self._order = order

    def score(self, trial_id: str) -> float | None:
        """The trial's score at its last check (None before its first)."""
        member = self._members.get(trial_id)
        return member.last_score if member is not None else None

    def recent_scores(self, trial_id: str) -> Sequence[float]:
        """The trial's last finite reported scores, oldest first (at most the strategy's ``score_window``)."""
        member = self._members.get(trial_id)
        return tuple(member.recent_scores) if member is not None else ()

    def rivals(self, trial_id: str) -> list[str]:
        """The live trials other than ``trial_id`` that have a finite score, in the order they were added."""
        members = self._members
        return [other for other in self._order if other != trial_id and not members[other].finished
                and _finite(members[other].last_score)]


class ExploitStrategy:
    """How a trial chooses whom to copy at its check.

    ``score_window``: how many of each trial's recent reported scores the strategy reads
    (``Standings.recent_scores``); 0 for none. ``keeps_checkpoint``: whether a trial's checkpoint at this
    check is kept as its donor checkpoint (by default only the upper quantile's are).
    """

    name: str = ""
    score_window: int = 0

    def keeps_checkpoint(self, trial_id: str, standings: Standings) -> bool:
        return trial_id in standings.upper

    def choose_donor(self, trial_id: str, standings: Standings, rng: np.random.Generator) -> str | None:
        """The trial ``trial_id`` copies now, or None to keep training as it is."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ``experiment.json`` records beyond Ray's options (nothing for Ray's truncation); by default
        ``name``, or the class's name."""
        return {"exploit_strategy": self.name or type(self).__name__}


@lazy_dataclass.dataclass(frozen=True)
class Truncation(ExploitStrategy):
    """Ray's: a trial in the bottom quantile copies a random trial of the top quantile."""

    name = "truncation"

    def choose_donor(self, trial_id: str, standings: Standings, rng: np.random.Generator) -> str | None:
        if trial_id not in standings.lower or not standings.upper:
            return None
        return standings.upper[int(rng.integers(len(standings.upper)))]

    def describe(self) -> dict[str, Any]:
        return {}


@lazy_dataclass.dataclass(frozen=True)
class BinaryTournament(ExploitStrategy):
    """The PBT paper's: a trial picks one random live rival and copies it if the rival's score is better.
    Every trial keeps its checkpoint at each check, since any may be picked."""

    name = "binary_tournament"

    def keeps_checkpoint(self, trial_id: str, standings: Standings) -> bool:
        return True

    def choose_donor(self, trial_id: str, standings: Standings, rng: np.random.Generator) -> str | None:
        rivals = standings.rivals(trial_id)
        if not rivals:
            return None
        rival = rivals[int(rng.integers(len(rivals)))]
        return rival if self.beats(rival, trial_id, standings) else None

    def beats(self, rival: str, trial_id: str, standings: Standings) -> bool:
        own = standings.score(trial_id)
        own_score = own if own is not None and _finite(own) else -math.inf
        return float(standings.score(rival)) > own_score  # type: ignore[arg-type]  # a rival's score is finite


@lazy_dataclass.dataclass(frozen=True)
class TTest(BinaryTournament):
    """The PBT paper's: a binary tournament, but the rival is copied only if its mean over the last ``window``
    reported scores is higher and Welch's t-test gives p < ``significance``."""

    window: int = 10
    significance: float = 0.05
    name = "ttest"

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2:
            raise ConfigError(f"TTest(window) must be an int >= 2 (scores per side of the t-test), got "
                              f"{describe(self.window)}")
        if isinstance(self.significance, bool) or not isinstance(self.significance, (int, float)) \
                or not 0 < self.significance <= 1:
            raise ConfigError(f"TTest(significance) must be in (0, 1], got {describe(self.significance)}")

    @property
    def score_window(self) -> int:  # type: ignore[override]
        return self.window

    def beats(self, rival: str, trial_id: str, standings: Standings) -> bool:
        own, other = standings.recent_scores(trial_id), standings.recent_scores(rival)
        if len(own) < 2 or len(other) < 2:
            return False
        if float(np.mean(other)) <= float(np.mean(own)):
            return False
        return welch_t_test(other, own) < self.significance

    def describe(self) -> dict[str, Any]:
        return {"exploit_strategy": self.name, "ttest_window": self.window,
                "ttest_significance": self.significance}


class ExploreStrategy:
    """How the config a trial restarts with is made from the one it copied."""

    name: str = ""

    def explore(self, config: Mapping[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator, *,
                resample_probability: float, perturbation_factors: Sequence[float], bounds: PerturbBounds | None,
                custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None,
                ) -> tuple[dict[str, Any], tuple[HyperparamChange, ...]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"explore_strategy": self.name or type(self).__name__}


@lazy_dataclass.dataclass(frozen=True)
class Perturb(ExploreStrategy):
    """Ray's: each mutated value is resampled with ``resample_probability``, else multiplied by a factor
    (lists: shifted one step)."""

    name = "perturb"

    def explore(self, config: Mapping[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator, *,
                resample_probability: float, perturbation_factors: Sequence[float], bounds: PerturbBounds | None,
                custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None,
                ) -> tuple[dict[str, Any], tuple[HyperparamChange, ...]]:
        return perturb_config(config, mutations, rng, resample_probability=resample_probability,
                              perturbation_factors=perturbation_factors, bounds=bounds,
                              custom_explore_fn=custom_explore_fn)

    def describe(self) -> dict[str, Any]:
        return {}


@lazy_dataclass.dataclass(frozen=True)
class Resample(Perturb):
    """Every mutated value is resampled from its mutation."""

    name = "resample"

    def explore(self, config: Mapping[str, Any], mutations: Mapping[str, Mutation], rng: np.random.Generator, *,
                resample_probability: float, perturbation_factors: Sequence[float], bounds: PerturbBounds | None,
                custom_explore_fn: Callable[[dict[str, Any]], dict[str, Any]] | None,
                ) -> tuple[dict[str, Any], tuple[HyperparamChange, ...]]:
        return super().explore(config, mutations, rng, resample_probability=1.0,
                               perturbation_factors=perturbation_factors, bounds=bounds,
                               custom_explore_fn=custom_explore_fn)

    def describe(self) -> dict[str, Any]:
        return {"explore_strategy": self.name}


#: ``exploit=`` names; True means the first.
EXPLOIT_STRATEGIES: dict[str, Callable[..., ExploitStrategy]] = {
    "truncation": Truncation, "binary_tournament": BinaryTournament, "ttest": TTest}
#: ``explore=`` names; True means the first.
EXPLORE_STRATEGIES: dict[str, Callable[[], ExploreStrategy]] = {"perturb": Perturb, "resample": Resample}


def exploit_strategy(value: Any, ttest_window: int = 10, ttest_significance: float = 0.05) -> ExploitStrategy | None:
    """The strategy ``exploit=value`` names (None for False: explore-only).

        >>> exploit_strategy(True), exploit_strategy("ttest", ttest_window=5)
        (Truncation(), TTest(window=5, significance=0.05))
    """
    if isinstance(value, ExploitStrategy):
        return value
    name = _choice("exploit", value, EXPLOIT_STRATEGIES)
    if name is None:
        return None
    if name == "ttest":
        return TTest(window=ttest_window, significance=ttest_significance)
    return EXPLOIT_STRATEGIES[name]()


def explore_strategy(value: Any) -> ExploreStrategy | None:
    """The strategy ``explore=value`` names (None for False: exploit-only).

        >>> explore_strategy(True), explore_strategy("resample"), explore_strategy(False)
        (Perturb(), Resample(), None)
    """
    if isinstance(value, ExploreStrategy):
        return value
    name = _choice("explore", value, EXPLORE_STRATEGIES)
    return None if name is None else EXPLORE_STRATEGIES[name]()


def _choice(argument: str, value: Any, allowed: Mapping[str, Any]) -> str | None:
    if value is True:
        return next(iter(allowed))
    if value is False:
        return None
    if isinstance(value, str) and value in allowed:
        return value
    kind = "ExploitStrategy" if argument == "exploit" else "ExploreStrategy"
    raise ConfigError(f"{argument} must be True, False or one of {', '.join(repr(a) for a in allowed)}; got "
                      f"{value!r} (or pass an {kind} from pbtlab.schedulers.strategies)")


def _finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


