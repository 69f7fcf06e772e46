"""The ``pbtlab serve`` subcommand (argument parsing only; the web stack loads when it runs).

    $ pbtlab serve                                 # ./pbtlab_results on http://127.0.0.1:8375
    $ pbtlab serve pbtlab_demo runs/ --port 9000
    $ pbtlab serve runs/ --host 0.0.0.0            # other machines too: prints a warning
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_DIR = "pbtlab_results"


def add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="watch experiments live in a browser (needs pbtlab[serve])")
    p.add_argument("dirs", nargs="*", metavar="DIR",
                   help=f"folders holding experiments, searched 3 levels deep (default ./{DEFAULT_DIR})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; others print a warning)")
    p.add_argument("--port", type=int, default=8375, help="port (default 8375; 0 picks a free one)")
    p.add_argument("--stale-after", type=float, default=600.0, metavar="SECONDS",
                   help="a run without experiment_end unchanged this long shows as stopped (default 600)")
    p.set_defaults(func=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    from pbtlab.serve.app import serve_forever

    dirs = args.dirs or [DEFAULT_DIR]
    try:
        serve_forever(dirs, host=args.host, port=args.port, allow_missing=not args.dirs,
                      stale_after=args.stale_after)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    return 0
