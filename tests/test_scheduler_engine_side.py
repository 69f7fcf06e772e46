"""``EngineSide``'s defaults fit a scheduler written from scratch: a trial it left out is offered again (no
``selection_epoch`` needed), and a scheduler that does declare an epoch is asked again only when it changes."""

from __future__ import annotations

from pbtlab import tune
from pbtlab.config import RunConfig, TuneConfig
from pbtlab.schedulers import TrialScheduler
from pbtlab.tuner import Tuner


def train(config):
    for i in range(3):
        tune.report({"score": config["x"] + i})


class OneAfterAnother(TrialScheduler):
    """Starts the second trial only once the first has completed; records every offer it gets."""

    def __init__(self):
        self.added = []
        self.completed = set()
        self.offers = []

    def on_trial_add(self, trial_id, config, tag):
        self.added.append(trial_id)
        return config

    def on_trial_complete(self, trial_id, population):
        self.completed.add(trial_id)
        return super().on_trial_complete(trial_id, population)

    def choose_trials_to_run(self, candidates, k, allow_any=False):
        ids = [t.trial_id for t in candidates]
        self.offers.append((ids, allow_any))
        first = self.added[0]
        return [tid for tid in ids if tid == first or first in self.completed][:k]


class WithAnEpochThatNeverChanges(OneAfterAnother):
    @property
    def selection_epoch(self):
        return 7


def run(storage, scheduler):
    return Tuner(train, param_space={"x": tune.grid_search([0.0, 10.0])},
                 tune_config=TuneConfig(metric="score", mode="max", scheduler=scheduler, max_concurrent_trials=2),
                 run_config=RunConfig(storage_path=storage, verbose=0)).fit()


def short(trial_id):
    return trial_id.rsplit("_", 1)[-1]


def test_a_trial_left_out_is_offered_again_by_default(storage):
    scheduler = OneAfterAnother()
    results = run(storage, scheduler)
    starts = [(e["event"], short(e["trial_id"])) for e in results.events
              if e["event"] in ("trial_start", "trial_complete", "forced_start")]
    assert starts == [("trial_start", "00000"), ("trial_complete", "00000"), ("trial_start", "00001"),
                      ("trial_complete", "00001")]
    # offered at the start, after each of the first trial's 3 reports, and when it completed (then chosen)
    assert [([short(t) for t in ids], allow_any) for ids, allow_any in scheduler.offers] == [
        (["00000", "00001"], False)] + [(["00001"], False)] * 4


def test_a_declared_epoch_that_never_changes_means_no_second_offer_and_the_engine_forces_a_start(storage):
    scheduler = WithAnEpochThatNeverChanges()
    results = run(storage, scheduler)
    assert [short(e["trial_id"]) for e in results.events_of("forced_start")] == ["00001"]
    assert [([short(t) for t in ids], allow_any) for ids, allow_any in scheduler.offers] == [
        (["00000", "00001"], False), (["00001"], True)]
