"""Ray's policy logs: ``pbt_global.txt`` and ``pbt_policy_<trial>.txt`` (``PopulationBasedTraining(log_config=True)``).

One JSON array per exploit: ``[target_tag, donor_tag, target_iteration, donor_iteration, donor_config,
new_config]``. A trial's file is its donor's file, copied, plus the new row: the lineage of its policy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from pbtlab.rundir.records import EventKind
from pbtlab.rundir.store import ExperimentStore, dumps

__all__ = ["append_exploit", "GLOBAL_FILE", "policy_file", "rebuild"]

GLOBAL_FILE = "pbt_global.txt"


def policy_file(trial_id: str) -> str:
    return f"pbt_policy_{trial_id}.txt"


def append_exploit(store: ExperimentStore, target_id: str, donor_id: str, row: list[Any]) -> None:
    line = dumps(row)
    store.append_policy(GLOBAL_FILE, line)
    store.append_policy(policy_file(target_id), line, copy_from=policy_file(donor_id))


def rebuild(path: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite the policy files from the exploit events kept (after a resume dropped later events)."""
    for name in os.listdir(path):
        if name == GLOBAL_FILE or (name.startswith("pbt_policy_") and name.endswith(".txt")):
            os.remove(os.path.join(path, name))
    store = ExperimentStore(path)
    events = list(events)
    new_configs = {e["seq"] - 1: e.get("new_config") for e in events if e.get("event") == EventKind.EXPLORE}
    for event in events:
        if event.get("event") != EventKind.EXPLOIT:
            continue
        row = [event.get("target_tag"), event.get("donor_tag"), event["target_iteration"], event["donor_iteration"],
               event["donor_config"], new_configs.get(event["seq"])]
        append_exploit(store, event["trial_id"], event["donor"], row)
    store.flush()
