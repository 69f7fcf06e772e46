"""Trials as Ray actors, on a local Ray or an existing cluster (the ``[ray]`` extra).

    RunConfig(executor="ray")                              # ray.init() unless Ray is already initialized
    RunConfig(executor=RayExecutor(address="auto"))        # join the cluster started with `ray start`

This is the only module that imports ``ray``, and only when a ``RayExecutor`` is set up.

Each trial runs in one actor for as long as it lives: the actor runs the trial's function in a
:class:`~pbtlab.executors.threads.ThreadWorker` (the same thread-and-lock handoff as the in-process
executor), and every actor call returns the trial's next message. A PBT exploit sends ``RESTART`` with
the donor's checkpoint and the new config to the same actor, which restarts the function in place. A
new actor is created only for a new trial or after an actor died (reported as ``WorkerDied``, so
``FailureConfig(max_failures)`` retries it on a fresh actor). The driver side (one record per trial,
dispatch order, ``WorkerDied``) is :class:`~pbtlab.executors.dispatch.DispatchExecutor`'s; this module
is the transport and the checkpoint traffic.

Where checkpoints live (``checkpoint_transport``):

- ``"auto"`` (default): the driver's experiment directory is the one complete copy. An actor on the
  driver's node writes its checkpoints straight into it. An actor on another node writes them into a
  node-local scratch directory and sends each checkpoint's files back with its report (through Ray's
  object store), and the driver stores them in the experiment directory. When a ``RESTART`` names a
  checkpoint that the actor's node does not hold (a donor trained on another node), the driver ships
  the directory's files to it through the object store. No node needs to see any other node's disk,
  and ``Tuner.restore``, pruning and analysis work on the driver's directory as usual.
- ``"shared"``: every node sees ``storage_path`` at the same path (NFS, a cluster file system, or a
  one-machine cluster): actors read and write the experiment directory directly and nothing is copied.
  Use it when checkpoints are large and such a file system exists.
- ``"object_store"``: like ``"auto"`` but even actors on the driver's node use scratch directories and
  transfers (for testing the transport on one machine).

Resources: without ``tune.with_resources`` an actor needs one CPU to be placed but holds none while it
lives (Ray's default for actors), so paused trials do not block running ones; at most
``max_concurrent_trials`` (default: the cluster's CPUs) trials run at once, and actors are spread over
the nodes (``SPREAD``). With ``tune.with_resources(trainable, {"cpu": 2, "gpu": 0.5})`` each trial's
actor is created with ``num_cpus=2, num_gpus=0.5`` (Ray sets ``CUDA_VISIBLE_DEVICES`` for it), and a
trial starts only when its resources fit next to the running trials' in the cluster's totals. Ray
holds an actor's resources for its whole life, paused included, so give a synchronous PBT run enough
resources for the whole population (or ``max_concurrent_trials``). ``actor_options`` (a dict, or a
function ``trial_id -> dict``) adds custom resources or placement and overrides these.

Working directory and output: each trial's function runs inside its trial directory (on its node), so
relative paths are per trial; with ``RunConfig(log_to_file=...)`` the actor's file descriptors 1 and 2
go to the trial's log files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pbtlab._optional import require
from pbtlab.errors import ConfigError, describe
from pbtlab.executors.dispatch import DispatchExecutor, WorkerLost, WorkerRecord
from pbtlab.executors.pool import ResourcePool
from pbtlab.executors.threads import EXITED, ThreadWorker
from pbtlab.session import (
    Command,
    CommandKind,
    ReportMessage,
    SavedMessage,
    StartSpec,
    WorkerMessage,
    redirect_descriptors,
)

__all__ = ["ActorWorker", "import_ray", "pack_directory", "RayExecutor", "TRANSPORTS", "unpack_directory"]

TRANSPORTS = ("auto", "shared", "object_store")


def import_ray() -> Any:
    return require("ray", "ray", "executor='ray' and its trials")


# -- moving checkpoint directories as bytes ------------------------------------------------------------
def pack_directory(path: str) -> bytes:
    """The files of a directory as an uncompressed tar archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def unpack_directory(data: bytes, target: str) -> None:
    """Recreate a packed directory at ``target`` atomically (unpack to a hidden name, then rename)."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".tmp_{os.path.basename(target)}_{uuid.uuid4().hex[:8]}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tar.extractall(staging)
    if os.path.exists(target):
        shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)


# -- the actor ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class _Reply:
    message: WorkerMessage | None  # None after STOP
    files: bytes | None  # the reported checkpoint's files, when the driver cannot see them
    node_id: str


class _TrialActor:
    """Runs one trial's function in a thread of a Ray worker process (wrapped by ``ray.remote`` lazily)."""

    def __init__(self, trainable: Callable[..., Any], driver_node: str, transport: str) -> None:
        ray = import_ray()
        self.trainable = trainable
        self.node_id = ray.get_runtime_context().get_node_id()
        self.direct = transport == "shared" or (transport == "auto" and self.node_id == driver_node)
        self.worker: Any = None
        self.gpu_ids: tuple[str, ...] = ()
        self.driver_dir = ""  # the experiment directory on the driver
        self.local_dir = ""  # where this actor keeps it (the same path when direct)

    # paths -------------------------------------------------------------------------------------------
    def _bind(self, spec: StartSpec) -> None:
        self.driver_dir = os.path.dirname(spec.trial_dir)
        if self.direct:
            self.local_dir = self.driver_dir
        else:
            key = hashlib.sha1(self.driver_dir.encode()).hexdigest()[:12]
            self.local_dir = os.path.join(tempfile.gettempdir(), "pbtlab_ray", self.node_id[:12], key)

    def _to_local(self, path: str) -> str:
        return os.path.join(self.local_dir, os.path.relpath(path, self.driver_dir))

    def _to_driver(self, path: str) -> str:
        return os.path.join(self.driver_dir, os.path.relpath(path, self.local_dir))

    def _localize(self, spec: StartSpec, files: bytes | None) -> StartSpec:
        if self.direct:
            return spec
        checkpoint = self._to_local(spec.checkpoint_path) if spec.checkpoint_path else None
        if files is not None and checkpoint is not None:
            unpack_directory(files, checkpoint)
        trial_dir = self._to_local(spec.trial_dir)
        os.makedirs(trial_dir, exist_ok=True)
        return dataclasses.replace(spec, trial_dir=trial_dir, checkpoint_path=checkpoint)

    def _reply(self, message: Any) -> _Reply:
        if message is EXITED:
            self.worker = None
            return _Reply(None, None, self.node_id)
        files = None
        if isinstance(message, (ReportMessage, SavedMessage)) and message.checkpoint_path is not None \
                and not self.direct:
            files = pack_directory(message.checkpoint_path)
            message = dataclasses.replace(message, checkpoint_path=self._to_driver(message.checkpoint_path))
        return _Reply(message, files, self.node_id)

    # calls from the driver ------------------------------------------------------------------------------
    def start(self, spec: StartSpec, files: bytes | None) -> _Reply:
        self._bind(spec)
        spec = self._localize(spec, files)
        gpu_ids = tuple(str(g) for g in import_ray().get_gpu_ids())  # what Ray gave this actor
        self.gpu_ids = gpu_ids
        spec = dataclasses.replace(spec, gpu_ids=gpu_ids)
        if spec.log_to_file != (None, None):
            redirect_descriptors(spec)  # this worker process serves this one trial
        self.worker = ThreadWorker(self.trainable, spec, chdir=True)
        return self._reply(self.worker.step(None))

    def step(self, command: Command, files: bytes | None) -> _Reply:
        if self.worker is None:
            return _Reply(None, None, self.node_id)
        if command.kind is CommandKind.RESTART and command.spec is not None:
            spec = dataclasses.replace(self._localize(command.spec, files), gpu_ids=self.gpu_ids)
            command = Command(CommandKind.RESTART, spec)
        return self._reply(self.worker.step(command))

    def remove_scratch(self) -> None:
        if not self.direct and self.local_dir:
            shutil.rmtree(self.local_dir, ignore_errors=True)


# -- the driver side ----------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True, eq=False, kw_only=True)
class ActorWorker(WorkerRecord):
    """A trial's Ray actor and the reply it owes the driver."""

    handle: Any
    reply: Any = None  # the object ref of the outstanding actor call, while busy
    node_id: str | None = None  # known after its first reply


class RayExecutor(DispatchExecutor[ActorWorker]):
    """Runs each trial in a Ray actor that lives as long as the trial (see the module docstring).

    Args:
        address: passed to ``ray.init(address=...)`` when Ray is not initialized yet: None starts a local
            Ray (or joins the one in ``RAY_ADDRESS``), "auto" joins the cluster on this machine,
            "ray://host:10001" a remote one. Ignored when Ray is already initialized.
        checkpoint_transport: "auto" (default), "shared" or "object_store"; see the module docstring.
        actor_options: extra ``ActorClass.options(...)`` for every trial's actor (a dict), or a function
            ``trial_id -> dict``. Default: ``{"scheduling_strategy": "SPREAD"}``.
        init_kwargs: extra keyword arguments for ``ray.init``.
    """

    name = "ray"
    _default_resources = None  # without tune.with_resources, max_concurrent_trials alone limits (see above)

    def __init__(self, address: str | None = None, *, checkpoint_transport: str = "auto",
                 actor_options: Mapping[str, Any] | Callable[[str], Mapping[str, Any]] | None = None,
                 init_kwargs: Mapping[str, Any] | None = None) -> None:
        if address is not None and not isinstance(address, str):
            raise ConfigError(f"RayExecutor(address=...) must be a string such as 'auto' or None, got {describe(address)}")
        if checkpoint_transport not in TRANSPORTS:
            raise ConfigError(f"RayExecutor(checkpoint_transport=...) must be one of {', '.join(TRANSPORTS)}, "
                              f"got {describe(checkpoint_transport)}")
        if actor_options is not None and not isinstance(actor_options, Mapping) and not callable(actor_options):
            raise ConfigError(f"RayExecutor(actor_options=...) must be a dict or a function trial_id -> dict, "
                              f"got {describe(actor_options)}")
        if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
            raise ConfigError(f"RayExecutor(init_kwargs=...) must be a dict, got {describe(init_kwargs)}")
        super().__init__()
        self.address = address
        self.checkpoint_transport = checkpoint_transport
        self.actor_options = actor_options
        self.init_kwargs = dict(init_kwargs or {})
        self._ray: Any = None
        self._actor_class: Any = None
        self._trainable_ref: Any = None
        self._driver_node = ""
        self._node_has: dict[str, set[str]] = {}  # node id -> checkpoint paths (driver paths) it holds
        #: Where each trial's actor ran last (node ids), and how many checkpoints crossed nodes.
        self.trial_nodes: dict[str, str] = {}
        self.checkpoints_to_driver = 0
        self.checkpoints_to_workers = 0
        self.actors_started = 0

    # -- Ray ---------------------------------------------------------------------------------------------
    def _ensure_ray(self) -> Any:
        if self._ray is None:
            ray = import_ray()
            if not ray.is_initialized():
                kwargs: dict[str, Any] = {"include_dashboard": False} if self.address is None else {}
                kwargs.update(self.init_kwargs)
                ray.init(address=self.address, **kwargs)
            self._ray = ray
            self._driver_node = ray.get_runtime_context().get_node_id()
        return self._ray

    # -- protocol ------------------------------------------------------------------------------------------
    def setup(self, trainable: Callable[..., Any], max_concurrent: int) -> None:
        ray = self._ensure_ray()
        self._actor_class = ray.remote(_TrialActor)
        self._ensure_pool()
        try:
            self._trainable_ref = ray.put(trainable)
        except Exception as error:  # noqa: BLE001 - any serialization failure means the same to the user
            raise ConfigError(f"executor='ray' must send the trainable to Ray workers, but {describe(trainable)} "
                              f"cannot be serialized ({error})") from None

    def default_concurrency(self, num_trials: int) -> int:
        cpus = int(self._ensure_ray().cluster_resources().get("CPU", 1))
        return max(1, min(num_trials, cpus))

    def _ensure_pool(self) -> ResourcePool:
        if self._pool is None:
            totals = self._ensure_ray().cluster_resources()
            gpus = int(totals.get("GPU", 0))
            self._pool = ResourcePool(float(totals.get("CPU", 1)), [str(n) for n in range(gpus)])
        return self._pool

    def capacity_error(self, resources: Any) -> str | None:
        problem = self._ensure_pool().capacity_error(resources)
        return None if problem is None else f"{problem} in the Ray cluster"

    def actor_options_for(self, spec: StartSpec) -> dict[str, Any]:
        """The ``ActorClass.options(...)`` a trial's actor is created with: spread over the nodes, its
        ``tune.with_resources`` as ``num_cpus``/``num_gpus``, then ``actor_options``."""
        options: dict[str, Any] = {"scheduling_strategy": "SPREAD"}
        if spec.resources is not None:
            options["num_cpus"] = spec.resources.cpu
            options["num_gpus"] = spec.resources.gpu
        extra = self.actor_options(spec.trial_id) if callable(self.actor_options) else self.actor_options
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigError(f"RayExecutor(actor_options=...) returned {describe(extra)} for trial "
                              f"{spec.trial_id}; it must return a dict")
        options.update(extra or {})
        return options

    # -- transport: an actor per trial, one outstanding call each --------------------------------------------
    def _launch(self, spec: StartSpec) -> ActorWorker:
        options = self.actor_options_for(spec)
        handle = self._actor_class.options(**options).remote(
            self._trainable_ref, self._driver_node, self.checkpoint_transport)
        self.actors_started += 1
        worker = ActorWorker(spec.trial_id, handle=handle)
        # Its node is not known yet: ship the checkpoint it starts from, if any (cheap when it is local).
        files = self._files_for(worker, spec.checkpoint_path)
        worker.reply = handle.start.remote(spec, files)
        return worker

    def _deliver(self, worker: ActorWorker, command: Command) -> None:
        files = None
        if command.kind is CommandKind.RESTART and command.spec is not None:
            files = self._files_for(worker, command.spec.checkpoint_path)
        worker.reply = worker.handle.step.remote(command, files)

    def _collect(self, busy: list[ActorWorker], timeout: float | None) -> list[ActorWorker]:
        ray = self._ray
        refs = [w.reply for w in busy]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if not ready:
            return []
        if len(refs) > 1:  # all replies already in, so that wait() can take the earliest dispatched
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = more or ready
        arrived = set(ready)
        return [w for w in busy if w.reply in arrived]

    def _receive(self, worker: ActorWorker) -> WorkerMessage:
        ray = self._ray
        ref, worker.reply = worker.reply, None
        try:
            reply: _Reply = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise WorkerLost(self._kill(worker, f"its Ray actor died: {error}")) from None
        except ray.exceptions.RayError as error:
            raise WorkerLost(self._kill(worker, f"its Ray actor failed: {error}")) from None
        if reply.message is None:  # pragma: no cover - the function ended without a STOP
            raise WorkerLost(self._kill(worker, "its function ended without a message"))
        worker.node_id = reply.node_id
        self.trial_nodes[worker.trial_id] = reply.node_id
        message = reply.message
        if isinstance(message, (ReportMessage, SavedMessage)) and message.checkpoint_path is not None:
            if reply.files is not None:
                unpack_directory(reply.files, message.checkpoint_path)
                self.checkpoints_to_driver += 1
            self._node_has.setdefault(reply.node_id, set()).add(message.checkpoint_path)
        return message

    def _retire(self, worker: ActorWorker, final: bool) -> None:
        """Stop a trial's actor: a parked one unwinds its function and exits; a busy one is killed.

        Scratch directories are shared by the trials on a node, so they are removed only at shutdown.
        """
        if worker.dead:
            return
        if worker.busy_since is not None:
            self._ray.kill(worker.handle, no_restart=True)
            return
        worker.handle.step.remote(Command(CommandKind.STOP), None)
        if final:
            worker.handle.remove_scratch.remote()
        worker.handle.__ray_terminate__.remote()

    # -- helpers ---------------------------------------------------------------------------------------
    def _files_for(self, worker: ActorWorker, checkpoint_path: str | None) -> bytes | None:
        """The checkpoint's files if the actor's node may not hold them (None when it does or may read them)."""
        if checkpoint_path is None or self.checkpoint_transport == "shared":
            return None
        node = worker.node_id
        if node is not None and checkpoint_path in self._node_has.get(node, ()):
            return None
        if node is not None and node == self._driver_node and self.checkpoint_transport == "auto":
            return None
        if node is None and self.checkpoint_transport == "auto" and len(self._ray.nodes()) == 1:
            return None  # a one-node cluster: the actor will be on the driver's node
        self.checkpoints_to_workers += 1
        if node is not None:
            self._node_has.setdefault(node, set()).add(checkpoint_path)
        return pack_directory(checkpoint_path)

    def _kill(self, worker: ActorWorker, how: str) -> str:
        """Make sure a failed actor is gone; return ``how``."""
        with contextlib.suppress(Exception):  # it is gone already
            self._ray.kill(worker.handle, no_restart=True)
        return how
