"""Ray Tune's class API, ``tune.Trainable``, run on pbtlab's function protocol.

    >>> from pbtlab import tune
    >>> class Counter(tune.Trainable):
    ...     def setup(self, config):
    ...         self.total = 0.0
    ...     def step(self):
    ...         self.total += self.config["rate"]
    ...         return {"total": self.total}
    ...     def save_checkpoint(self, checkpoint_dir):
    ...         return {"total": self.total}
    ...     def load_checkpoint(self, checkpoint):
    ...         self.total = checkpoint["total"]

Pass the class to ``Tuner`` as Ray users do. Each call of ``step()`` is one report;
``CheckpointConfig(checkpoint_frequency=N)`` saves every N iterations and ``checkpoint_at_end`` when
the trial ends. PBT asks the trial for a checkpoint when it needs one (``save_checkpoint`` is called
at that moment), so exploits never lack a donor checkpoint. With ``TuneConfig(reuse_actors=True)`` an
exploit calls ``reset_config(new_config)`` on the same object and, if it returns True, keeps it and
calls ``load_checkpoint``; otherwise a new object is built.

``save_checkpoint(checkpoint_dir)`` either writes files into ``checkpoint_dir`` (and returns None or
the directory), or returns a dict; ``load_checkpoint`` then gets the same dict back, or the directory
path. A dict is stored as JSON when it can be, else pickled (the trainable reads its own checkpoint;
pbtlab's readers never unpickle anything).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from pbtlab.checkpoint import Checkpoint
from pbtlab.errors import ConfigError, ReportError, describe
from pbtlab.resources import hostname
from pbtlab.session import current_session, report

__all__ = [
    "ClassTrainableRunner", "DICT_JSON", "DICT_PICKLE", "is_class_trainable", "METADATA", "Trainable",
    "wrap_trainable",
]

DICT_JSON = "_dict_checkpoint.json"
DICT_PICKLE = "_dict_checkpoint.pkl"
METADATA = ".pbtlab_trainable.json"


class Trainable:
    """Base class of class trainables (Ray's ``tune.Trainable``); override ``setup`` and ``step``.

    Attributes: ``config``, ``iteration`` (= ``training_iteration``: steps done, counted across
    restores), ``trial_id``, ``trial_name``, ``logdir`` (the trial's directory).
    """

    def __init__(self, config: dict[str, Any] | None = None, logger_creator: Any = None,
                 storage: Any = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        self._iteration = 0
        self._time_total = 0.0
        self._iterations_since_restore = 0
        self._time_since_restore = 0.0
        session = current_session()
        self._trial_id = session.spec.trial_id if session else "default"
        self._trial_name = ((session.spec.trial_name or f"{type(self).__name__}_{self._trial_id}") if session
                            else "default")
        self._logdir = session.spec.trial_dir if session else os.getcwd()
        self.setup(copy.deepcopy(self.config))

    # -- what users override --------------------------------------------------------------------------
    def setup(self, config: dict[str, Any]) -> None:
        """Build the model, data and optimizer from ``config`` (called once per object)."""

    def step(self) -> dict[str, Any]:
        """One training iteration; returns its metrics."""
        raise NotImplementedError(f"{type(self).__name__} must implement step() (one iteration, returns a dict)")

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any] | str | None:
        """Write the state into ``checkpoint_dir``, or return it as a dict."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement save_checkpoint(checkpoint_dir) to be checkpointed "
            "(CheckpointConfig(checkpoint_frequency / checkpoint_at_end), or PBT cloning it)")

    def load_checkpoint(self, checkpoint: dict[str, Any] | str) -> None:
        """Restore the state ``save_checkpoint`` saved (the dict it returned, or the directory)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_checkpoint(checkpoint) to be restored")

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Take ``new_config`` in place (``reuse_actors=True``); return True if done, False to get a new object."""
        return False

    def cleanup(self) -> None:
        """Release resources; called when the object is discarded."""

    # -- attributes -----------------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        return self._iteration

    @property
    def training_iteration(self) -> int:
        return self._iteration

    @property
    def trial_id(self) -> str:
        return self._trial_id

    @property
    def trial_name(self) -> str:
        return self._trial_name

    @property
    def logdir(self) -> str:
        return self._logdir

    # -- Ray's driver-side methods, usable directly ---------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run one ``step()`` and count it; returns its metrics with Ray's automatic fields, as Ray does
        outside a Tuner too (``training_iteration``, ``time_this_iter_s``, ``time_total_s``, ``timestamp``,
        ``date``, ``trial_id``, ``done``, ``config``, ``iterations_since_restore``, ``time_since_restore``,
        ``pid``, ``hostname``, ``node_ip``).

            >>> class Once(Trainable):
            ...     def step(self):
            ...         return {"loss": 0.5}
            >>> result = Once({"lr": 0.1}).train()
            >>> result["loss"], result["training_iteration"], result["trial_id"], result["done"], result["config"]
            (0.5, 1, 'default', False, {'lr': 0.1})
        """
        result, elapsed = self._counted_step()
        result.setdefault("done", False)
        result.setdefault("training_iteration", self._iteration)
        result.setdefault("trial_id", self._trial_id)
        now = time.time()
        result.update(time_this_iter_s=elapsed, time_total_s=self._time_total, timestamp=int(now),
                      date=time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now)), pid=os.getpid(),
                      hostname=hostname(), node_ip=_node_ip(), config=copy.deepcopy(self.config),
                      time_since_restore=self._time_since_restore,
                      iterations_since_restore=self._iterations_since_restore)
        return result

    def _counted_step(self) -> tuple[dict[str, Any], float]:
        """One ``step()``, counted: its metrics as returned, and the seconds it took (a Tuner adds the rest)."""
        started = time.perf_counter()
        result = self.step()
        if not isinstance(result, Mapping):
            raise ReportError(f"{type(self).__name__}.step() must return a dict of metrics, got {describe(result)}")
        elapsed = time.perf_counter() - started
        self._iteration += 1
        self._iterations_since_restore += 1
        self._time_total += elapsed
        self._time_since_restore += elapsed
        return dict(result), elapsed

    def save(self, checkpoint_dir: str | None = None) -> str:
        """Save into ``checkpoint_dir`` (a new temporary directory by default); returns the directory."""
        directory = checkpoint_dir or tempfile.mkdtemp(prefix="pbtlab_trainable_")
        os.makedirs(directory, exist_ok=True)
        returned = self.save_checkpoint(directory)
        if isinstance(returned, Mapping):
            _write_dict(directory, dict(returned))
        elif returned is not None and not isinstance(returned, (str, os.PathLike)):
            raise ReportError(f"{type(self).__name__}.save_checkpoint() must return a dict, a path or None, "
                              f"got {describe(returned)}")
        elif returned is not None and os.path.abspath(os.fspath(returned)) != os.path.abspath(directory):
            if not os.path.isdir(returned):
                raise ReportError(f"{type(self).__name__}.save_checkpoint() returned {returned!r}, which is not "
                                  "a directory")
            shutil.copytree(returned, directory, dirs_exist_ok=True)
        with open(os.path.join(directory, METADATA), "w", encoding="utf-8") as handle:
            json.dump({"iteration": self._iteration, "time_total_s": self._time_total}, handle)
        return directory

    def restore(self, checkpoint_path: str) -> None:
        """Load a directory written by :meth:`save` (the iteration count comes back too)."""
        metadata = os.path.join(checkpoint_path, METADATA)
        if os.path.exists(metadata):
            with open(metadata, encoding="utf-8") as handle:
                values = json.load(handle)
            self._iteration = int(values.get("iteration", 0))
            self._time_total = float(values.get("time_total_s", 0.0))
        self._iterations_since_restore = 0
        self._time_since_restore = 0.0
        self.load_checkpoint(_read_dict(checkpoint_path))

    def stop(self) -> None:
        self.cleanup()


@functools.cache
def _node_ip() -> str:
    """This machine's address as Ray reports it (``node_ip``); 127.0.0.1 when it has none."""
    import socket

    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _write_dict(directory: str, state: dict[str, Any]) -> None:
    try:
        text = json.dumps(state)
    except (TypeError, ValueError):
        with open(os.path.join(directory, DICT_PICKLE), "wb") as handle:
            pickle.dump(state, handle)
        return
    with open(os.path.join(directory, DICT_JSON), "w", encoding="utf-8") as handle:
        handle.write(text)


def _read_dict(directory: str) -> dict[str, Any] | str:
    if os.path.exists(os.path.join(directory, DICT_JSON)):
        with open(os.path.join(directory, DICT_JSON), encoding="utf-8") as handle:
            return json.load(handle)  # type: ignore[no-any-return]
    if os.path.exists(os.path.join(directory, DICT_PICKLE)):
        with open(os.path.join(directory, DICT_PICKLE), "rb") as handle:
            return pickle.load(handle)  # type: ignore[no-any-return]  # the trainable's own checkpoint
    return directory


def is_class_trainable(trainable: Any) -> bool:
    return isinstance(trainable, type) and issubclass(trainable, Trainable)


class ClassTrainableRunner:
    """Runs a ``Trainable`` subclass as a function trainable: one report per ``step()``.

    One runner serves every trial of a run; it keeps each trial's object between restarts so that
    ``reuse_actors=True`` can reuse it. ``checkpoint_frequency``/``checkpoint_at_end`` come from
    ``CheckpointConfig``. ``saves_on_request`` tells the engine it may ask for checkpoints (``SAVE``).
    """

    saves_on_request = True

    def __init__(self, cls: type[Trainable], checkpoint_frequency: int = 0, checkpoint_at_end: bool = False,
                 reuse_actors: bool = False) -> None:
        self.cls = cls
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.checkpoint_frequency = checkpoint_frequency
        self.checkpoint_at_end = checkpoint_at_end
        self.reuse_actors = reuse_actors
        self._objects: dict[str, Trainable] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_objects": {}}  # objects live in the worker that built them

    def __call__(self, config: dict[str, Any]) -> None:
        session = current_session()
        if session is None:
            raise ReportError(f"{self.cls.__name__} must be run by a Tuner")
        from pbtlab.session import _RestartTrial, _StopTrial  # the protocol's own signals

        trainable = self._object_for(session.spec.trial_id, config)
        checkpoint = session.checkpoint
        if checkpoint is not None:
            trainable.restore(checkpoint.path)
        session.save_hook = lambda: _saved(trainable)
        session.save_hook_scratch = True  # _saved's folder is moved into the trial directory
        try:
            while True:
                result, _ = trainable._counted_step()  # the engine adds the automatic fields
                done = bool(result.get("done", False))  # reported too: RunConfig(stop={"done": True}) sees it
                due = self.checkpoint_frequency and trainable.iteration % self.checkpoint_frequency == 0
                if due or (done and self.checkpoint_at_end):
                    with tempfile.TemporaryDirectory(prefix="pbtlab_ckpt_") as directory:
                        saved = trainable.save(directory)
                        # A folder inside our scratch space is moved into the trial directory, not copied;
                        # one the class returned from elsewhere is its own, and is copied.
                        session.report(result, Checkpoint(saved), adopt=_inside(saved, directory))
                else:
                    report(result)
                if done:
                    break
        except _RestartTrial:
            if not self.reuse_actors:
                self._discard(session.spec.trial_id)
            raise
        except _StopTrial:
            self._discard(session.spec.trial_id)
            raise
        except BaseException:
            self._discard(session.spec.trial_id)
            raise

    def _object_for(self, trial_id: str, config: dict[str, Any]) -> Trainable:
        existing = self._objects.get(trial_id)
        if existing is not None and self.reuse_actors and existing.reset_config(copy.deepcopy(config)):
            existing.config = dict(config)
            return existing
        self._discard(trial_id)
        trainable = self.cls(config)
        self._objects[trial_id] = trainable
        return trainable

    def _discard(self, trial_id: str) -> None:
        trainable = self._objects.pop(trial_id, None)
        if trainable is not None:
            trainable.stop()


def _inside(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or lies under it (both resolved).

        >>> _inside("/tmp/a/b", "/tmp/a"), _inside("/tmp/ab", "/tmp/a"), _inside("/tmp/a", "/tmp/a")
        (True, False, True)
    """
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory + os.sep)


def _saved(trainable: Trainable) -> Checkpoint:
    """The checkpoint ``SAVE`` asks for: saved to a scratch directory that the session then moves into the
    trial directory (``save_hook_scratch``); removed here if the save fails."""
    directory = tempfile.mkdtemp(prefix="pbtlab_save_")
    try:
        return Checkpoint(trainable.save(directory))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def wrap_trainable(trainable: Any, checkpoint_config: Any, reuse_actors: bool | None) -> Any:
    """A class trainable becomes a runner; a function stays as it is."""
    if not is_class_trainable(trainable):
        if isinstance(trainable, type):
            raise ConfigError(
                f"Tuner(trainable) got the class {trainable.__qualname__}, which is not a tune.Trainable; "
                "subclass pbtlab.tune.Trainable (setup/step/save_checkpoint/load_checkpoint), or pass a function")
        return trainable
    return ClassTrainableRunner(trainable, checkpoint_frequency=int(checkpoint_config.checkpoint_frequency or 0),
                                checkpoint_at_end=bool(checkpoint_config.checkpoint_at_end),
                                reuse_actors=bool(reuse_actors))
