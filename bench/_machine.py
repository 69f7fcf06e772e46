"""What the benchmarks print about the machine's state, beside their figures.

    >>> io_stall() is None or io_stall().endswith("of the last minute")
    True
    >>> "CPUs, Python" in machine()
    True
"""

from __future__ import annotations

import os
import platform
import sys
import time


def machine() -> str:
    """The machine and the time, as every benchmark prints them: ``x86_64, 2 CPUs, Python 3.11.7, <date> UTC``."""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def io_stall() -> str | None:
    """How much of the last minute every task waited on I/O (Linux's ``/proc/pressure/io``, "full avg60"),
    as text; None where the kernel does not say. Figures that write many files (checkpoints, rows) move with
    it: on the 2-core VM a throttled disk tripled ``bench/scaling.py``'s cost per report."""
    try:
        with open("/proc/pressure/io", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("full"):
                    fields = dict(part.split("=") for part in line.split()[1:])
                    return f"all tasks stalled on I/O {float(fields['avg60']):.0f}% of the last minute"
    except (OSError, ValueError, KeyError):
        return None
    return None
