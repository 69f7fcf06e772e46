"""Runnable examples: the PBT paper's toy problem (``pbtlab.examples.toy``)."""

__all__: list[str] = []  # a package of modules: import from them
