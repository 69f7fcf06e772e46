"""The one place tensorboardX is imported (``pip install 'pbtlab[tensorboard]'``)."""

from __future__ import annotations


from pbtlab._optional import require


class _TensorBoardX:
    """tensorboardX's event-file writer and Summary proto (``pip install 'pbtlab[tensorboard]'``)."""

    def __init__(self) -> None:
        import sys

        # tensorboardX imports torch when it is installed (seconds), only to accept tensors; we write floats.
        # Where the trainable has not imported torch, hide it during this import, then put things back.
        blocked = "torch" not in sys.modules
        if blocked:
            sys.modules["torch"] = None  # type: ignore[assignment]
        feature = "TensorBoard files"
        try:
            self.Summary = require("tensorboardX.proto.summary_pb2", "tensorboard", feature).Summary
            self.Event = require("tensorboardX.proto.event_pb2", "tensorboard", feature).Event
            # synchronous: no writer thread competing with the trials
            self.EventsWriter = require("tensorboardX.event_file_writer", "tensorboard", feature).EventsWriter
            self.FileWriter = require("tensorboardX.writer", "tensorboard", feature).FileWriter
        finally:
            if blocked:
                del sys.modules["torch"]


_TBX: _TensorBoardX | None = None


def tensorboardx() -> _TensorBoardX:
    """The one place tensorboardX is imported."""
    global _TBX
    if _TBX is None:
        _TBX = _TensorBoardX()
    return _TBX
