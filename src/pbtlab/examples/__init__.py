"""Runnable examples: the PBT paper's toy problem (``pbtlab.examples.toy``)."""
