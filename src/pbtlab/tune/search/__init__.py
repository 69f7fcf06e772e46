"""``pbtlab.tune.search``: Ray's ``BasicVariantGenerator`` (random and grid search); other searchers are
not supported and give a clear error in ``TuneConfig(search_alg=...)``.

    >>> from pbtlab.tune.search import BasicVariantGenerator
    >>> BasicVariantGenerator(max_concurrent=2).max_concurrent
    2
"""

from pbtlab.search import BasicVariantGenerator

__all__ = ["BasicVariantGenerator"]
