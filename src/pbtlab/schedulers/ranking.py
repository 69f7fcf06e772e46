"""PBT's bookkeeping per trial, and the ranking of the population that quantiles are read from.

The ranking is kept sorted as scores change (bisect), rather than sorted at every check. Scores are
sign-adjusted (higher is better); a NaN or infinite score ranks below every finite one:

    >>> ranking = Ranking()
    >>> for trial_id, score in [("a", 1.0), ("b", 3.0), ("c", float("nan")), ("d", 2.0)]:
    ...     ranking.add(trial_id)
    ...     ranking.rank(trial_id, score)
    >>> ranking.quantiles(0.25)
    (['c'], ['b'])
    >>> ranking.unrank("c", float("nan")); ranking.quantiles(0.25)
    (['a'], ['b'])
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pbtlab import lazy_dataclass
from pbtlab.rundir.checkpoints import CheckpointRef

__all__ = ["MemberState", "Quantile", "Ranking"]


class Quantile(list):  # type: ignore[type-arg]
    """A quantile's trial ids, worst first: a list whose ``in`` looks up a set. PBT's barrier asks every trial
    whether it is in the upper or lower quantile, which on a list is a scan (1,024 trials: 256 ids each).
    Read it; do not change it.

        >>> upper = Quantile(["t3", "t7"])
        >>> upper, "t7" in upper, "t1" in upper, upper == ["t3", "t7"]
        (['t3', 't7'], True, False, True)
    """

    __slots__ = ("_ids",)

    def __init__(self, trial_ids: Sequence[str] = ()) -> None:
        super().__init__(trial_ids)
        self._ids = frozenset(self)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self._ids


@lazy_dataclass.dataclass(slots=True)
class MemberState:
    """What PBT remembers about one trial between its checks (saved in ``state.json``)."""

    orig_tag: str
    last_score: float | None = None  # sign-adjusted score at the last check; NaN when it could not be ranked
    last_checkpoint: CheckpointRef | None = None  # the donor checkpoint kept at the last check
    last_perturbation_time: float = 0.0
    last_train_time: float = 0.0
    last_iteration: int = 0
    finished: bool = False
    recent_scores: list[float] = dataclasses.field(default_factory=list)  # for strategies with a score_window

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "orig_tag": self.orig_tag, "last_score": _json_float(self.last_score),
            "last_checkpoint": self.last_checkpoint.to_dict() if self.last_checkpoint else None,
            "last_perturbation_time": self.last_perturbation_time, "last_train_time": self.last_train_time,
            "last_iteration": self.last_iteration, "finished": self.finished,
        }
        if self.recent_scores:
            data["recent_scores"] = list(self.recent_scores)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemberState:
        values = dict(data)
        values["recent_scores"] = [float(v) for v in values.get("recent_scores", [])]
        if values.get("last_checkpoint"):
            values["last_checkpoint"] = CheckpointRef.from_dict(values["last_checkpoint"])
        if isinstance(values.get("last_score"), str):
            values["last_score"] = float(values["last_score"])
        return cls(**values)


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return repr(value)  # 'nan', 'inf', '-inf' survive a JSON round trip as strings


class Ranking:
    """Trials in the order they were added, and the scores of those ranked, sorted (ties: the order added)."""

    def __init__(self) -> None:
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        self._sorted: list[tuple[float, int, str]] = []  # finite scores, ascending
        self._unrankable: set[str] = set()

    @property
    def order(self) -> Sequence[str]:
        """Every trial added, in the order added."""
        return self._order

    def add(self, trial_id: str) -> None:
        """A new trial (not ranked until it has a score)."""
        self._position[trial_id] = len(self._order)
        self._order.append(trial_id)

    def rank(self, trial_id: str, score: float | None) -> None:
        """Rank the trial with ``score`` (None: no score yet, not ranked)."""
        if score is None:
            return
        if math.isfinite(score):
            bisect.insort(self._sorted, (score, self._position[trial_id], trial_id))
        else:
            self._unrankable.add(trial_id)

    def unrank(self, trial_id: str, score: float | None) -> None:
        """Take the trial out of the ranking; ``score`` must be the one it was ranked with."""
        if score is None:
            return
        if math.isfinite(score):
            index = bisect.bisect_left(self._sorted, (score, self._position[trial_id], trial_id))
            del self._sorted[index]
        else:
            self._unrankable.discard(trial_id)

    def quantiles(self, fraction: float) -> tuple[Quantile, Quantile]:
        """(lower, upper): the worst and best ``n`` ranked trials, ``n = min(ceil(N fraction), floor(N / 2))``,
        worst first in both. Unrankable scores rank below every finite one and are never in ``upper``."""
        total = len(self._sorted) + len(self._unrankable)
        if total <= 1:
            return Quantile(), Quantile()
        n = math.ceil(total * fraction)
        if n > total / 2:
            n = math.floor(total / 2)
        if n == 0:
            return Quantile(), Quantile()
        unrankable = sorted(self._unrankable, key=self._position.__getitem__)
        lower = unrankable[:n] + [tid for _, _, tid in self._sorted[:max(0, n - len(unrankable))]]
        upper = [tid for _, _, tid in self._sorted[max(0, len(self._sorted) - n):]]
        return Quantile(lower), Quantile(upper)
