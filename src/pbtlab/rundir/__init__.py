"""The run directory: one layer that writes and reads everything a run leaves on disk.

- :mod:`pbtlab.rundir.records`: the schema (events, ``experiment.json``, ``state.json``);
- :mod:`pbtlab.rundir.store`: atomic writes, buffered appends, truncation on resume;
- :mod:`pbtlab.rundir.checkpoints`: :class:`CheckpointRef` and checkpoint persistence;
- :mod:`pbtlab.rundir.reader`: :class:`RunDir`, the one reader every view goes through.
"""

__all__: list[str] = []  # a package of modules: import from them
