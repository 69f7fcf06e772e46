"""``pbtlab demo``: the tutorial end to end, every figure, both animations and a report in one folder.

    >>> summary = run_demo(getfixture("tmp_path") / "demo", animations=False)  # doctest: +SKIP
    >>> sorted(summary.files)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from pbtlab.analysis.lineage import RunData, run_data
from pbtlab.errors import ConfigError, describe
from pbtlab.viz import _mpl
from pbtlab.viz.tutorial import TUTORIAL_COLORS, toy_labels

__all__ = ["DemoSummary", "run_demo", "RUN_NAMES"]

#: Experiment names inside ``<output>/runs``.
RUN_NAMES = {"pbt2": "pbt_2_trials", "grid": "grid_search", "pbt4": "pbt_4_trials",
             "exploit_only": "figure2_exploit_only", "explore_only": "figure2_explore_only"}


@dataclasses.dataclass(slots=True)
class DemoSummary:
    """What the demo wrote: ``files`` (description -> path), final Q per trial per run, timings."""

    output_dir: str
    files: dict[str, str]
    final_q: dict[str, list[tuple[str, str, float]]]  # run -> [(trial id, start label, final Q)]
    seconds: dict[str, float]

    def table(self) -> str:
        """A short plain-text table of final Q per trial."""
        lines = [f"{'experiment':<22} {'trial':<13} {'start':<20} {'final Q':>8}"]
        for run, rows in self.final_q.items():
            for trial_id, label, q in rows:
                lines.append(f"{run:<22} {trial_id:<13} {label:<20} {q:>8.4f}")
        return "\n".join(lines)


def _history_figure(run: RunData, colors: list[str], labels: list[str], interval: int, title: str) -> Any:
    from pbtlab.viz.history import plot_Q_history
    from pbtlab.viz.trajectories import plot_parameter_history

    figure = _mpl.new_figure(figsize=(13, 6))
    axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    plot_parameter_history(run, colors, labels, perturbation_interval=interval, fig=figure, ax=axes[0])
    plot_Q_history(run, colors, labels, ax=axes[1])
    figure.suptitle(title)
    return figure


class _Alongside:
    """``work()`` in a forked child process, on the second core, while this process goes on; ``wait()``
    joins it and raises its error. Where fork is missing or there is one core, ``work()`` runs in ``wait()``.

        >>> done = _Alongside(lambda: None); done.wait()
    """

    def __init__(self, work: Callable[[], None]) -> None:
        import multiprocessing

        self.work: Callable[[], None] | None = work
        self.process: Any = None
        if "fork" in multiprocessing.get_all_start_methods() and (os.cpu_count() or 1) >= 2:
            context = multiprocessing.get_context("fork")
            self.receive, send = context.Pipe(duplex=False)
            self.process = context.Process(target=self._child, args=(work, send), daemon=True)
            self.process.start()
            send.close()
            self.work = None

    @staticmethod
    def _child(work: Callable[[], None], send: Any) -> None:
        import traceback

        try:
            work()
            send.send(None)
        except BaseException:  # the parent re-raises it with the child's traceback
            send.send(traceback.format_exc())

    def wait(self) -> None:
        if self.work is not None:
            work, self.work = self.work, None
            work()
            return
        if self.process is None:
            return
        try:
            error = self.receive.recv() if self.receive.poll(None) else None
        except EOFError:
            error = "it exited without a word"
        self.process.join()
        self.process = None
        if error is not None:
            raise RuntimeError(f"pbtlab demo: writing the animations in a child process failed: {error}")


def _fresh_run_dir(runs_dir: str, name: str) -> None:
    """Remove a previous demo's experiment of this name (only if it is a pbtlab experiment directory)."""
    path = os.path.join(runs_dir, name)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "experiment.json")):
            raise ConfigError(f"{path} exists and is not a pbtlab experiment; choose another output folder")
        shutil.rmtree(path)


def run_demo(output_dir: str | os.PathLike[str] = "pbtlab_demo", seed: int = 0, animations: bool = True,
             log: Callable[[str], None] | None = None) -> DemoSummary:
    """Run the tutorial (2-trial PBT, grid search, 4-trial PBT) and Figure 2's ablations; write every
    figure (PNG), both animations (GIF) and a report of the 4-trial run into ``output_dir``.
    Re-running replaces the previous demo's files in that folder.
    """
    from pbtlab.examples.runs import run_toy_grid, run_toy_pbt
    from pbtlab.viz.animation import make_animation
    from pbtlab.viz.figure2 import plot_figure2, run_figure2, write_png
    from pbtlab.viz.lineage import plot_lineage
    from pbtlab.viz.population import plot_population_hyperparameters
    from pbtlab.viz.report import write_report
    from pbtlab.viz.schedule import plot_hyperparameter_schedule

    if not isinstance(output_dir, (str, os.PathLike)):
        raise ConfigError(f"output_dir must be a folder path, got {describe(output_dir)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be a whole number, got {describe(seed)}")
    say = log or (lambda message: None)
    out = os.path.abspath(os.fspath(output_dir))
    runs_dir = os.path.join(out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    for name in RUN_NAMES.values():
        _fresh_run_dir(runs_dir, name)
    files: dict[str, str] = {}
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = now - clock
        clock = now
        say(f"  {step:<38} {seconds[step]:5.1f} s")

    common: dict[str, Any] = {"seed": seed, "storage_path": runs_dir, "verbose": 0}
    pbt2 = run_data(run_toy_pbt(population=2, name=RUN_NAMES["pbt2"], **common))
    grid = run_data(run_toy_grid(population=2, name=RUN_NAMES["grid"], **common))
    pbt4 = run_data(run_toy_pbt(population=4, name=RUN_NAMES["pbt4"], **common))
    colors2, colors4 = TUTORIAL_COLORS[:2], TUTORIAL_COLORS[:4]
    labels2, labels4 = toy_labels(pbt2), toy_labels(pbt4)
    gifs = {"pbt_2_trials.gif": (pbt2, colors2, labels2), "pbt_4_trials.gif": (pbt4, colors4, labels4)}

    def write_animations() -> None:
        for key, (run, colors, labels) in gifs.items():
            make_animation(run, colors, labels, 4, os.path.join(out, key))

    # The GIFs need only the runs so far: they are drawn on the other core while the rest runs here.
    animating = _Alongside(write_animations) if animations else None
    ablations = run_figure2(runs_dir, seed=seed, reuse={"pbt": pbt2, "grid": grid})  # + exploit/explore only
    lap("experiments (5 runs, 1,200 trial-iterations)")
    pngs: dict[str, bytes] = {}  # each figure rendered once: its file, and the report's copy of the 4-trial ones
    for key, run, colors, labels, title in (
            ("pbt_2_trials.png", pbt2, colors2, labels2, "PBT, 2 trials"),
            ("grid_search.png", grid, colors2, toy_labels(grid), "Grid search, 2 trials (fixed hyperparameters)"),
            ("pbt_4_trials.png", pbt4, colors4, labels4, "PBT, 4 trials")):
        pngs[key] = _mpl.png_bytes(_history_figure(run, colors, labels, 4, title))
    pngs["figure2.png"] = _mpl.png_bytes(plot_figure2(ablations))
    figure = plot_lineage(pbt4, colors=colors4, labels=labels4, ax=_mpl.new_figure(figsize=(11, 4.2)).add_subplot())
    pngs["pbt_4_lineage.png"] = _mpl.png_bytes(figure.figure)
    schedule_figure = _mpl.new_figure(figsize=(10, 6.6))
    plot_hyperparameter_schedule(pbt4, colors=colors4,
                                 axes=list(schedule_figure.subplots(3, 1, sharex=True, squeeze=False)[:, 0]))
    pngs["pbt_4_schedule.png"] = _mpl.png_bytes(schedule_figure)
    population_figure = _mpl.new_figure(figsize=(10, 6.6))
    plot_population_hyperparameters(pbt4, colors=colors4, labels=labels4,
                                    axes=list(population_figure.subplots(3, 1, sharex=True, squeeze=False)[:, 0]))
    pngs["pbt_4_population.png"] = _mpl.png_bytes(population_figure)
    for key, data in pngs.items():
        files[key] = write_png(data, os.path.join(out, key))
    lap("figures (8 PNG)")
    if animating is not None:
        animating.wait()
        files.update((key, os.path.join(out, key)) for key in gifs)
        lap("animations (2 GIF, 101 frames each; the rest)")
    report_figures = {"parameter_history": pngs["pbt_4_trials.png"], "schedule": pngs["pbt_4_schedule.png"],
                      "population": pngs["pbt_4_population.png"], "lineage": pngs["pbt_4_lineage.png"]}
    files["report.html"] = write_report(pbt4, os.path.join(out, "report.html"), colors=colors4, labels=labels4,
                                        animation=files.get("pbt_4_trials.gif", False), figures=report_figures)
    lap("report (HTML of the 4-trial run)")
    final_q = {}
    for name, run in (("PBT, 2 trials", pbt2), ("grid search", grid), ("PBT, 4 trials", pbt4),
                      ("exploit only", run_data(ablations["exploit_only"])),
                      ("explore only", run_data(ablations["explore_only"]))):
        final_q[name] = [(t.trial_id, label, float(t.final_row.get("Q", float("nan"))))
                         for t, label in zip(run.trials, toy_labels(run))]
    return DemoSummary(out, files, final_q, seconds)
