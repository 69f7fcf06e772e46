"""``pbtlab.tune.search.basic_variant``: where Ray keeps ``BasicVariantGenerator``.

    >>> from pbtlab.tune.search.basic_variant import BasicVariantGenerator
    >>> BasicVariantGenerator().constant_grid_search
    False
"""

from pbtlab.search import BasicVariantGenerator

__all__ = ["BasicVariantGenerator"]
