"""Ray Tune's ``Callback``: hooks the controller calls as a run progresses.

    >>> from pbtlab import tune
    >>> class CountResults(tune.Callback):
    ...     def setup(self, **info):
    ...         self.results = 0
    ...     def on_trial_result(self, iteration, trials, trial, result, **info):
    ...         self.results += 1

Pass callbacks as ``RunConfig(callbacks=[CountResults()])``. The hooks have Ray's names and
arguments, and are called in Ray's order: ``setup`` once; per step of the loop ``on_step_begin`` and
``on_step_end``; ``on_trial_start`` at every (re)start, after ``on_trial_restore`` when a checkpoint
was loaded; after a report ``on_trial_result`` (after the scheduler decided), then ``on_checkpoint``
and ``on_trial_save`` if it carried a checkpoint; ``on_trial_recover`` when a failed trial will be
retried, ``on_trial_error`` when it will not; ``on_trial_complete``; ``on_experiment_end`` last.
``trials`` and ``trial`` are read-only views (``trial.trial_id``, ``config``, ``status``,
``last_result``, ``path``, ``checkpoint``; ``str(trial)`` is its name).

A callback that raises stops the run with a :class:`~pbtlab.errors.CallbackError` naming it; the
run keeps its last consistent state, so ``Tuner.restore`` continues it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pbtlab.errors import CallbackError, ConfigError, describe

__all__ = ["Callback", "CallbackList", "check_callbacks", "HOOKS"]

HOOKS = ("setup", "on_step_begin", "on_step_end", "on_trial_start", "on_trial_restore", "on_trial_save",
         "on_trial_result", "on_trial_complete", "on_trial_recover", "on_trial_error", "on_checkpoint",
         "on_experiment_end")


class Callback:
    """Base class: override the hooks you need; each takes keyword arguments (and ``**info``)."""

    def setup(self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None,
              **info: Any) -> None:
        """Once, before the first trial starts; ``info["trials"]`` holds every trial (pbtlab's addition)."""

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Before each step of the loop (a step handles one message from one trial)."""

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """After each step of the loop."""

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial (re)starts: the first time, and after every exploit, failure or resume."""

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial's state is replaced from a checkpoint (its own, or a donor's after an exploit)."""

    def on_trial_save(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial's checkpoint was saved."""

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        """A trial reported; ``result`` is the row as recorded."""

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial finished (stop criterion, function returned, stopped by the scheduler or the run's end)."""

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed and will be restarted (``FailureConfig(max_failures)``)."""

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """A trial failed for good."""

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        """A trial's checkpoint (a ``tune.Checkpoint``) was persisted."""

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        """Once, after the last trial finished (or the run stopped)."""


class CallbackList:
    """Calls a hook on every callback in order; an exception becomes a ``CallbackError`` naming the callback."""

    def __init__(self, callbacks: Sequence[Any] | None) -> None:
        self.callbacks = check_callbacks(callbacks)
        self._methods: dict[str, list[tuple[Any, Any]]] = {}  # hook -> (callback, its bound method), looked up once

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def leave_out(self, hook: str, callbacks: list[Any]) -> None:
        """From now on, ``hook`` does not call ``callbacks`` (they get what it carries another way)."""
        self._methods[hook] = [(c, m) for c, m in self._listeners(hook) if not any(c is x for x in callbacks)]

    def listeners(self, hook: str) -> list[tuple[Any, Any]]:
        """(callback, its bound method) for each callback that ``hook`` calls."""
        return list(self._listeners(hook))

    def _listeners(self, hook: str) -> list[tuple[Any, Any]]:
        """(callback, its bound method) for each callback that implements ``hook``; a ``Callback`` subclass that
        inherits the base class's empty hook is left out (nothing to call)."""
        methods = self._methods.get(hook)
        if methods is None:
            empty = getattr(Callback, hook, None)
            methods = self._methods[hook] = [
                (callback, method) for callback in self.callbacks
                if (method := getattr(callback, hook, None)) is not None
                and (empty is None or getattr(method, "__func__", None) is not empty)]
        return methods

    def wants(self, hook: str) -> bool:
        """Whether any callback implements ``hook``: the caller can skip building its arguments.

            >>> class Count(Callback):
            ...     def on_trial_result(self, **info): ...
            >>> CallbackList([Count()]).wants("on_trial_result"), CallbackList([Count()]).wants("on_step_end")
            (True, False)
        """
        return bool(self._listeners(hook))

    def call(self, hook: str, **arguments: Any) -> None:
        for callback, method in self._listeners(hook):
            try:
                method(**arguments)
            except Exception as error:
                raise CallbackError(type(callback).__name__, hook, error) from error


def check_callbacks(callbacks: Any) -> list[Any]:
    """``RunConfig(callbacks=...)``: a list of ``Callback`` objects (or objects with its hooks)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise ConfigError(f"RunConfig(callbacks=...) must be a list of tune.Callback objects, got {describe(callbacks)}")
    for index, callback in enumerate(callbacks):
        if isinstance(callback, type):
            raise ConfigError(f"RunConfig(callbacks[{index}]) is the class {callback.__name__}; pass an instance: "
                              f"{callback.__name__}()")
        if not isinstance(callback, Callback) and not any(callable(getattr(callback, h, None)) for h in HOOKS):
            raise ConfigError(f"RunConfig(callbacks[{index}]) must be a tune.Callback, got {describe(callback)}")
    return list(callbacks)
