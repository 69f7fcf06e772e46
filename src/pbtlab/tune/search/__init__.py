"""``pbtlab.tune.search``: Ray's ``BasicVariantGenerator`` (random and grid search); other searchers are
not supported and give a clear error in ``TuneConfig(search_alg=...)``.

    >>> from pbtlab.tune.search import BasicVariantGenerator
    >>> BasicVariantGenerator(max_concurrent=2).max_concurrent
    2
"""

from pbtlab.search import BasicVariantGenerator
from pbtlab.space import grid_search

__all__ = ["BasicVariantGenerator", "grid_search"]


def __getattr__(name: str) -> object:
    """Ray Tune's other names here import, and raise an error saying what to use instead when used."""
    from pbtlab.tune._mirror import mirrored_name

    return mirrored_name("tune.search", name, f"pbtlab.tune.search.{name}")
