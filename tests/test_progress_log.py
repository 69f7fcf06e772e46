"""pbtlab's log lines (`pbtlab.progress.logger`): through `logging` once the process has imported it, and the
same text on stderr without importing it in a process that never did."""

from __future__ import annotations

import logging
import subprocess
import sys

from pbtlab.progress import PbtlabLog


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)


RUN = """
import sys
{first}
from pbtlab.examples.runs import run_toy_pbt
run_toy_pbt(population=2, seed=0, storage_path={path!r}, verbose=2)
print("logging imported:", "logging" in sys.modules)
"""


def _decision_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(("Trial name", "b", "-", "=="))]


def test_a_run_in_a_process_without_logging_writes_what_logging_would(tmp_path):
    plain = _run(RUN.format(first="", path=str(tmp_path / "a")))
    with_logging = _run(RUN.format(first="import logging", path=str(tmp_path / "b")))
    assert plain.stdout.splitlines()[-1] == "logging imported: False"
    assert with_logging.stdout.splitlines()[-1] == "logging imported: True"
    lines = _decision_lines(plain.stderr)
    assert any(line.startswith("[PopulationBasedTraining] [Exploit] Cloning trial") for line in lines), lines
    assert lines == _decision_lines(with_logging.stderr)


LEVELS = """
import sys
from pbtlab.progress import ensure_log_handler, logger
logger.debug("debug 1"); logger.info("info 1"); logger.warning("warning 1"); logger.error("error 1")
ensure_log_handler()
logger.debug("debug 2"); logger.info("info 2"); logger.warning("warning 2")
print("logging imported:", "logging" in sys.modules)
import logging
logger.info("info 3")
logging.getLogger("pbtlab").setLevel(logging.WARNING)
logger.info("info 4"); logger.warning("warning 4")
"""


def test_levels_before_and_after_the_handler_and_once_logging_is_imported():
    """Without a handler: WARNING and above (logging's last resort); with ensure_log_handler: INFO too; once
    logging is imported, its settings apply (here the application raises pbtlab's level)."""
    done = _run(LEVELS)
    assert done.stdout == "logging imported: False\n"
    assert done.stderr.splitlines() == ["warning 1", "error 1", "info 2", "warning 2", "info 3", "warning 4"]


def test_through_logging_records_name_pbtlab_and_the_caller(caplog):
    log = PbtlabLog()

    def decide() -> None:
        log.warning("[pbtlab] something to say")

    with caplog.at_level(logging.WARNING, logger="pbtlab"):
        decide()
    (record,) = caplog.records
    assert (record.name, record.levelno) == ("pbtlab", logging.WARNING)
    assert record.getMessage() == "[pbtlab] something to say"
    assert record.funcName == "decide" and record.filename == "test_progress_log.py"


def test_a_broken_stream_does_not_stop_the_caller(monkeypatch):
    class Closed:
        def write(self, text: str) -> None:
            raise ValueError("I/O operation on closed file")

        def flush(self) -> None:
            pass

    log = PbtlabLog()
    monkeypatch.delitem(sys.modules, "logging")  # as in a process that never imported it
    monkeypatch.setattr(sys, "stderr", Closed())
    log.warning("lost, as logging's handler would lose it")
