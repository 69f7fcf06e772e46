"""``pbtlab demo``, ``pbtlab figure2`` and ``pbtlab report`` (added to the ``pbtlab`` command by ``pbtlab.cli``).

Importing this module imports neither matplotlib nor Pillow; each command does, when it runs.

    pbtlab demo [-o DIR]            the tutorial end to end: figures, animations, report, final Q table
    pbtlab figure2 [-o FILE]        the PBT paper's Figure 2 (PBT, exploit only, explore only, grid search)
    pbtlab report RUN_DIR [-o FILE] one self-contained HTML report of an experiment
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any


def add_viz_commands(sub: Any) -> None:
    """Add the ``demo``, ``figure2`` and ``report`` subcommands to an argparse subparsers object."""
    p = sub.add_parser("demo", help="run the tutorial end to end and write every figure, animation and a report")
    p.add_argument("-o", "--output", default="pbtlab_demo", help="output folder (default ./pbtlab_demo)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--no-animations", dest="animations", action="store_false", help="skip the two GIFs")
    p.set_defaults(func=demo_command)

    p = sub.add_parser("figure2", help="the PBT paper's Figure 2 on the toy problem, from four real runs")
    p.add_argument("-o", "--output", default="figure2.png", help="PNG to write (default ./figure2.png)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--storage", default=None,
                   help="keep the four experiment directories here (default: a temporary folder, deleted)")
    p.set_defaults(func=figure2_command)

    p = sub.add_parser("report", help="one self-contained HTML report of an experiment directory")
    p.add_argument("run_dir", help="experiment directory (e.g. pbtlab_results/<name>)")
    p.add_argument("-o", "--output", default=None,
                   help="HTML file to write (default RUN_DIR/report.html; ./<name>_report.html for a Ray Tune run)")
    p.add_argument("--no-animation", dest="animation", action="store_false",
                   help="do not render the parameter animation (toy problem only)")
    p.add_argument("--static", action="store_true",
                   help="images only: no interactive plots, no scripts (a smaller file)")
    p.set_defaults(func=report_command)


def demo_command(args: argparse.Namespace) -> int:
    from pbtlab.viz.demo import run_demo

    start = time.perf_counter()
    print(f"pbtlab demo: the PBT tutorial end to end, into {os.path.abspath(args.output)}")
    summary = run_demo(args.output, seed=args.seed, animations=args.animations, log=print)
    print(f"\nWrote {len(summary.files)} files in {summary.output_dir}:")
    for name, path in summary.files.items():
        print(f"  {name:<22} {os.path.getsize(path) / 1024:8.0f} KiB")
    print("  runs/                  the experiment directories (pbtlab show / events / report work on them)")
    print("\nFinal Q per trial (the optimum is 1.2):")
    print(summary.table())
    print(f"\nOpen {summary.files['report.html']} in a browser. Total {time.perf_counter() - start:.1f} s.")
    return 0


def figure2_command(args: argparse.Namespace) -> int:
    from pbtlab.analysis.lineage import run_data
    from pbtlab.viz.figure2 import PANELS, final_values, plot_figure2, run_figure2

    def make(storage: str) -> None:
        runs = run_figure2(storage, seed=args.seed)
        plot_figure2(runs, args.output)
        for key, title in PANELS:
            finals = ", ".join(f"{q:.4f}" for q in final_values(run_data(runs[key])))
            print(f"  {title:<13} final Q per trial: {finals}")

    if args.storage:
        make(args.storage)
    else:
        with tempfile.TemporaryDirectory(prefix="pbtlab_figure2_") as scratch:
            make(scratch)
    print(f"Wrote {os.path.abspath(args.output)}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from pbtlab.viz.report import write_report

    path = write_report(args.run_dir, args.output, animation=args.animation, interactive=not args.static)
    print(f"Wrote {os.path.abspath(path)}")
    return 0
