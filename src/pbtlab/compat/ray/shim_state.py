"""Whether ``pbtlab run`` has put its ``ray`` modules in place (set by :mod:`pbtlab.compat.ray.shim`).

Kept apart from the shim so that the argument checks can ask without importing the import hook.
"""

__all__ = ["active"]

#: True while ``pbtlab run`` (or ``ray_modules()``) answers ``import ray``.
active: bool = False
