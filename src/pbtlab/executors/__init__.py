"""Executors run trials: ``inprocess`` (the default, deterministic), ``process`` (local worker processes) and
``ray`` (Ray actors on a cluster), all behind the contract in :mod:`pbtlab.executors.base`."""
