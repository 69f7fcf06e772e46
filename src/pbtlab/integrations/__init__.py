"""Training libraries wired to pbtlab's ``tune.report`` / ``tune.get_checkpoint`` (each behind its own extra).

- :mod:`pbtlab.integrations.lightning`: PyTorch Lightning callbacks (``pip install 'pbtlab[lightning]'``).
"""

__all__: list[str] = []  # a package of modules: import from them
