"""A name pbtlab knows of but does not provide: importing it works, *using* it raises a clear error.

Scripts import more than they use (a helper module that imports a scheduler it never calls); such a script
should run. The object stands in for the name until it is called, instantiated, subclassed or has an
attribute read; then it raises the error ``make_error(name)`` builds, which names it and what to use instead.

    >>> placeholder = UnsupportedName("pkg.Fancy", lambda name: NotImplementedError(f"{name}: use Plain"))
    >>> placeholder
    <pkg.Fancy: not provided by pbtlab>
    >>> placeholder(1)
    Traceback (most recent call last):
    ...
    NotImplementedError: pkg.Fancy: use Plain
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["UnsupportedName"]


class UnsupportedName:
    """Stands in for ``name``; any use raises ``make_error(name)``."""

    __slots__ = ("_make_error", "_name")

    def __init__(self, name: str, make_error: Callable[[str], BaseException]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_make_error", make_error)

    def _fail(self) -> NoReturn:
        raise self._make_error(self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._fail()

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") and attribute.endswith("__"):  # introspection (copy, typing, pickle...)
            raise AttributeError(attribute)
        self._fail()

    def __setattr__(self, attribute: str, value: Any) -> NoReturn:
        self._fail()

    def __mro_entries__(self, bases: tuple[Any, ...]) -> NoReturn:  # class MyScheduler(Unsupported): ...
        self._fail()

    def __repr__(self) -> str:
        return f"<{self._name}: not provided by pbtlab>"
