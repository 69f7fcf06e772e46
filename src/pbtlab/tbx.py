"""The one place tensorboardX is imported (``pip install 'pbtlab[tensorboard]'``)."""

from __future__ import annotations

from typing import Any


class _TensorBoardX:
    """tensorboardX's event-file writer and Summary proto (``pip install 'pbtlab[tensorboard]'``)."""

    def __init__(self) -> None:
        import sys

        # tensorboardX imports torch when it is installed (seconds), only to accept tensors; we write floats.
        # Where the trainable has not imported torch, hide it during this import, then put things back.
        blocked = "torch" not in sys.modules
        if blocked:
            sys.modules["torch"] = None  # type: ignore[assignment]
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto.event_pb2 import Event
            from tensorboardX.proto.summary_pb2 import Summary
            from tensorboardX.writer import FileWriter
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("TensorBoard files need tensorboardX: pip install 'pbtlab[tensorboard]'") from None
        finally:
            if blocked:
                del sys.modules["torch"]
        self.Summary = Summary
        self.Event = Event
        self.EventsWriter = EventsWriter  # synchronous: no writer thread competing with the trials
        self.FileWriter = FileWriter


_TBX: _TensorBoardX | None = None


def tensorboardx() -> _TensorBoardX:
    """The one place tensorboardX is imported."""
    global _TBX
    if _TBX is None:
        _TBX = _TensorBoardX()
    return _TBX
