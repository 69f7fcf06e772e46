"""The ``pbtlab`` command: thin argument parsing over plain functions.

    pbtlab toy --population 4 --seed 0        run the tutorial's PBT on the paper's toy problem
    pbtlab show RUN_DIR                       settings, final table and decision counts of a run
    pbtlab events RUN_DIR [--kind exploit]    the recorded decisions, one line each
    pbtlab resume RUN_DIR                     continue a run whose driver was stopped or killed
    pbtlab run SCRIPT.py [ARGS...]            run an unmodified Ray Tune script on pbtlab
    pbtlab serve [DIR ...]                    watch experiments live in a browser (pbtlab[serve])
    pbtlab tensorboard RUN_DIR                TensorBoard curves that follow each trial's lineage
    pbtlab compare RUN_DIR...                 methods at equal compute: best metric so far, over seeds

Each subcommand lives in one ``add_<name>`` function below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pbtlab.errors import PbtlabError
from pbtlab.metrics import metric_value
from pbtlab.serve.command import add_serve


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


# -- toy -------------------------------------------------------------------------------------------------
def add_toy(sub: Any) -> None:
    p = sub.add_parser("toy", help="run the tutorial's PBT on the PBT paper's toy problem")
    p.add_argument("--population", type=_positive_int, default=2, help="number of trials (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--iterations", type=_positive_int, default=100, help="training iterations (default 100)")
    p.add_argument("--interval", type=_positive_int, default=4, help="perturbation interval (default 4)")
    p.add_argument("--async", dest="synch", action="store_false", help="asynchronous PBT (default synchronous)")
    p.add_argument("--storage", default=None, help="storage path (default ./pbtlab_results)")
    p.add_argument("--name", default=None, help="experiment name")
    p.add_argument("--executor", default="inprocess", choices=["inprocess", "greenlets", "process", "ray"],
                   help="where trials run (default in-process threads; greenlets: pbtlab[fast])")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    p.set_defaults(func=run_toy_command)


def run_toy_command(args: argparse.Namespace) -> int:
    from pbtlab.examples.runs import run_toy_pbt

    results = run_toy_pbt(population=args.population, seed=args.seed, iterations=args.iterations,
                          perturbation_interval=args.interval, synch=args.synch, storage_path=args.storage,
                          name=args.name, executor=args.executor, verbose=1 if args.quiet else 2)
    print(f"Results in {results.experiment_path}")
    return 0


# -- show / events -----------------------------------------------------------------------------------------
def add_show(sub: Any) -> None:
    p = sub.add_parser("show", help="settings, final table and decision counts of a run directory")
    p.add_argument("run_dir")
    p.set_defaults(func=show_command)


def show_command(args: argparse.Namespace) -> int:
    from pbtlab.analysis import load_results

    print(summarize_run(load_results(args.run_dir)))
    return 0


def summarize_run(grid: Any) -> str:
    """A plain-text summary of a run: settings, one line per trial, and decision counts."""
    from pbtlab.nested import get_path
    from pbtlab.progress import format_cell, render_plain

    exp = grid.experiment
    lines = [f"Experiment {exp.get('name')}  ({grid.experiment_path})",
             f"  trainable {exp.get('trainable')}  seed {exp.get('seed')}  metric {exp.get('metric')} "
             f"({exp.get('mode')})  executor {exp.get('executor')}",
             f"  scheduler {json.dumps(exp.get('scheduler'))}", ""]
    metric = exp.get("metric")
    columns = list(exp.get("param_columns", []))
    header = ["trial", "status", "iter", *columns, *( [metric] if metric else [])]
    rows = []
    for result in grid:
        config_values = [format_cell(get_path(result.config, column)) for column in columns]
        row = [result.trial_id, result.status, str(result.metrics.get("training_iteration", 0)), *config_values]
        if metric:
            row.append(format_cell(metric_value(result.metrics, metric)))
        rows.append(row)
    lines.append(render_plain("Trials", header, rows))
    counts: dict[str, int] = {}
    for event in grid.events:
        counts[event["event"]] = counts.get(event["event"], 0) + 1
    lines.append("")
    lines.append("Events: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    lines += [f"Data gap: {gap}" for gap in exp.get("gaps") or []]  # what a Ray Tune run did not keep
    return "\n".join(lines)


def add_events(sub: Any) -> None:
    p = sub.add_parser("events", help="the recorded decisions of a run, one line each")
    p.add_argument("run_dir")
    p.add_argument("--kind", action="append", help="only events of this kind (repeatable), e.g. exploit")
    p.add_argument("--json", action="store_true", help="print the raw JSON records")
    p.set_defaults(func=events_command)


def events_command(args: argparse.Namespace) -> int:
    from pbtlab.analysis import load_results
    from pbtlab.analysis.events import format_event

    grid = load_results(args.run_dir)
    for event in grid.events:
        if args.kind and event["event"] not in args.kind:
            continue
        print(json.dumps(event) if args.json else format_event(event))
    return 0


# -- resume ----------------------------------------------------------------------------------------------
def add_resume(sub: Any) -> None:
    p = sub.add_parser("resume", help="continue a run whose driver stopped or was killed")
    p.add_argument("run_dir")
    p.add_argument("--trainable", default=None,
                   help="module:function of the trainable (default: the one recorded in experiment.json)")
    p.add_argument("--resume-errored", action="store_true",
                   help="also run errored trials again, from their latest checkpoint")
    p.add_argument("--restart-errored", action="store_true",
                   help="also run errored trials again, from scratch")
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    p.set_defaults(func=resume_command)


def resume_command(args: argparse.Namespace) -> int:
    from pbtlab.tuner import resume_run

    results = resume_run(args.run_dir, trainable=args.trainable, verbose=1 if args.quiet else None,
                         resume_errored=args.resume_errored, restart_errored=args.restart_errored)
    print(f"Resumed and finished: {results.experiment_path}")
    return 0


# -- run -------------------------------------------------------------------------------------------------
def add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run an unmodified Ray Tune script on pbtlab (ray.tune -> pbtlab)",
                       description="Run SCRIPT.py as __main__ with ARGS, answering its `import ray...` with pbtlab: "
                                   "ray.tune and its schedulers/search/stopper, ray.train/ray.air configs; ray.init "
                                   "does nothing; any other Ray feature is a clear error.")
    p.add_argument("--executor", choices=["inprocess", "greenlets", "process"], default=None,
                   help="executor for RunConfigs that do not choose one (default: in-process)")
    p.add_argument("script", help="the Ray Tune script")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    p.set_defaults(func=run_script_command)


def run_script_command(args: argparse.Namespace) -> int:
    from pbtlab.compat.scripts import run_script

    try:
        run_script(args.script, args.args, executor=args.executor)
    except SystemExit as exit_:  # the script's own sys.exit(...)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


def add_tensorboard(sub: Any) -> None:
    p = sub.add_parser("tensorboard", help="write TensorBoard curves that follow each trial's lineage across exploits")
    p.add_argument("run_dir", help="a pbtlab or Ray Tune experiment directory")
    p.add_argument("-o", "--output", default=None,
                   help="folder to write (default: <run>/tensorboard_lineage; ./<name>_tensorboard_lineage for Ray)")
    p.set_defaults(func=tensorboard_command)


def tensorboard_command(args: argparse.Namespace) -> int:
    from pbtlab.loggers.lineage_tensorboard import write_lineage_tensorboard

    folders = write_lineage_tensorboard(args.run_dir, args.output)
    print(f"Wrote {len(folders)} lineage curves; view them with: tensorboard --logdir {os.path.dirname(folders[0])}"
          if folders else "No trials to write")
    return 0


# -- compare ---------------------------------------------------------------------------------------------
def add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="best metric against compute, per method, mean and 95%% interval over seeds")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--metric", default=None, help="metric to compare (default: the runs' TuneConfig metric)")
    p.add_argument("--mode", choices=["max", "min"], default=None, help="default: the runs' mode")
    p.add_argument("--group-pattern", default=None,
                   help="regex on the run directory name whose first group is the method, e.g. '^(.*)_seed\\d+$' "
                        "(default: PBT / other scheduler type / grid search / random search from experiment.json)")
    p.add_argument("--figure", default=None, help="also draw the figure to this file (needs the [viz] extra)")
    p.add_argument("--title", default=None, help="figure title")
    p.set_defaults(func=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    from pbtlab.analysis.compare import compare_runs, format_comparison, plot_comparison

    comparison = compare_runs(args.run_dirs, metric=args.metric, mode=args.mode, group_pattern=args.group_pattern)
    print(format_comparison(comparison))
    if args.figure:
        plot_comparison(comparison, title=args.title).savefig(args.figure, dpi=110, bbox_inches="tight")
        print(f"Figure: {args.figure}")
    return 0


COMMANDS: list[Callable[[Any], None]] = [add_toy, add_show, add_events, add_resume, add_run, add_serve,
                                          add_tensorboard, add_compare]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pbtlab", description="Population Based Training you can see.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    try:
        from pbtlab.viz.cli import add_viz_commands
    except ImportError:
        pass
    else:
        add_viz_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PbtlabError as error:
        print(f"pbtlab: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `pbtlab events RUN | head`: the reader left; that is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
