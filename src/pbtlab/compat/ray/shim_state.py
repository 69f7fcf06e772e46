"""Whether ``pbtlab run`` has put its ``ray`` modules in place (set by :mod:`pbtlab.compat.ray.shim`).

Kept apart from the shim so that the argument checks can ask without importing the import hook.
"""

#: True while ``pbtlab run`` (or ``ray_modules()``) answers ``import ray``.
active: bool = False
