"""``Tuner``: Ray Tune's entry point, a thin facade over ``pbtlab.engine``.

    >>> from pbtlab import tune, Tuner, TuneConfig
    >>> def trainable(config):
    ...     for step in range(3):
    ...         tune.report({"score": config["x"] * step})
    >>> results = Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
    ...                 tune_config=TuneConfig(metric="score", mode="max", seed=0),
    ...                 run_config=tune.RunConfig(storage_path=getfixture("tmp_path"), verbose=0)).fit()
    >>> results.get_best_result().config["x"]
    2
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab.analysis import ResultGrid
from pbtlab.config import RunConfig, TuneConfig, check_tuner_arguments
from pbtlab.engine import build
from pbtlab.engine.controller import Controller
from pbtlab.engine.reports import Stopper
from pbtlab.errors import ConfigError, ExperimentError, describe
from pbtlab.rundir.store import EXPERIMENT_FILE, read_json

__all__ = ["Stopper", "Tuner", "resume_run"]


class Tuner:
    """Ray Tune's ``Tuner``: ``Tuner(trainable, param_space=..., tune_config=..., run_config=...).fit()``."""

    def __init__(self, trainable: Callable[..., Any], *, param_space: Mapping[str, Any] | None = None,
                 tune_config: TuneConfig | None = None, run_config: RunConfig | None = None) -> None:
        check_tuner_arguments("Tuner", trainable, param_space, tune_config, run_config)
        self.trainable = trainable
        self.param_space = dict(param_space or {})
        self.tune_config = tune_config or TuneConfig()
        self.run_config = run_config or RunConfig()
        self._restore: dict[str, Any] | None = None  # set by Tuner.restore
        self._results: ResultGrid | None = None  # the last fit's, or the restored run's as it was left

    @classmethod
    def restore(cls, path: str | os.PathLike[str], trainable: Callable[..., Any], *,
                param_space: Mapping[str, Any] | None = None, tune_config: TuneConfig | None = None,
                run_config: RunConfig | None = None, resume_unfinished: bool = True,
                resume_errored: bool = False, restart_errored: bool = False) -> Tuner:
        """Continue an experiment whose driver stopped (even by SIGKILL) from its saved state.

        Every setting comes back from the run's ``experiment.json`` (all of ``TuneConfig``, ``RunConfig``,
        ``CheckpointConfig`` and ``FailureConfig`` that is JSON). ``tune_config``/``run_config`` change or
        add settings: each field that is not at its default replaces the stored one, the others keep the
        run's values. What JSON cannot hold must be passed again, and the resume names it: a stop function
        (an error), callbacks and an Executor object (a warning), a scheduler that cannot be rebuilt::

            Tuner.restore(path, trainable, run_config=RunConfig(callbacks=[MyCallback()]))

        As in Ray: ``resume_unfinished`` continues
        unfinished trials (False: they end as terminated); ``resume_errored`` runs errored trials again
        from their latest checkpoint; ``restart_errored`` runs them again from scratch.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise ConfigError(f"Tuner.restore(path) needs an experiment directory, got {describe(path)}")
        check_tuner_arguments("Tuner.restore", trainable, param_space, tune_config, run_config)
        path = os.path.abspath(os.fspath(path))
        build.check_resume(path, tune_config, run_config)  # clear errors now, before anything runs
        tuner = cls(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)
        for name, flag in (("resume_unfinished", resume_unfinished), ("resume_errored", resume_errored),
                           ("restart_errored", restart_errored)):
            if not isinstance(flag, bool):
                raise ConfigError(f"Tuner.restore({name}=...) must be True or False, got {describe(flag)}")
        options = build.ResumeOptions(resume_unfinished, resume_errored, restart_errored)
        tuner._restore = {"path": path, "tune_config": tune_config, "run_config": run_config, "options": options}
        tuner._results = ResultGrid.from_path(path)
        return tuner

    @staticmethod
    def can_restore(path: str | os.PathLike[str]) -> bool:
        """True if ``path`` holds an experiment that :meth:`restore` can continue."""
        return build.can_restore(path)

    def fit(self) -> ResultGrid:
        controller = self._controller()
        controller.run()
        self._results = results_of(controller)
        return self._results

    def get_results(self) -> ResultGrid:
        """The ``ResultGrid`` of the last :meth:`fit`; after :meth:`restore`, the run as it was left, without
        running anything. As in Ray, a Tuner that was neither fit nor restored has none (``ExperimentError``, a ``RuntimeError``)."""
        if self._results is None:
            raise ExperimentError("Tuner.get_results(): this Tuner has not run yet; call Tuner.fit() first "
                                   "(or Tuner.restore(path, trainable) to read a previous run)")
        return self._results

    def _controller(self) -> Controller:
        if self._restore is None:
            return build.new_run(self.trainable, self.param_space, self.tune_config, self.run_config)
        options = self._restore
        return build.resumed_run(options["path"], self.trainable, tune_config=options["tune_config"],
                                 run_config=options["run_config"], options=options["options"])


def results_of(controller: Controller) -> ResultGrid:
    """The ``ResultGrid`` of a controller that has run."""
    path = controller.store.path
    experiment = read_json(os.path.join(path, EXPERIMENT_FILE), "experiment settings")
    return ResultGrid(path, experiment, [t.to_dict() for t in controller.trials])


def resume_run(run_dir: str, trainable: str | None = None, verbose: int | None = None,
               resume_errored: bool = False, restart_errored: bool = False) -> ResultGrid:
    """Continue the run in ``run_dir`` (what ``pbtlab resume`` does); returns its ResultGrid."""
    path = os.path.abspath(run_dir)
    experiment, _ = build.read_run(path)
    spec = trainable or experiment.trainable_path
    if not spec:
        raise ConfigError(
            f"the run's trainable ({experiment.trainable}) was defined in a script or closure and cannot be "
            "imported again; pass --trainable package.module:function, or call Tuner.restore(path, trainable)")
    options = build.ResumeOptions(resume_errored=resume_errored, restart_errored=restart_errored)
    controller = build.resumed_run(path, build.import_trainable(spec), options=options, verbose=verbose)
    controller.run()
    return results_of(controller)
