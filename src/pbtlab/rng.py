"""A run's random streams: numpy's ``default_rng`` draw for draw, without importing ``numpy.random`` until needed.

Importing ``numpy.random`` costs about 12 ms of a process (ten extension modules, and OpenSSL through
``secrets``), 8% of the tutorial's whole 2-trial run. A run needs few draws, and only scalar ``random()``,
``integers()`` and ``uniform()`` in the common case, so :class:`Stream` computes those itself with numpy's
own algorithms (``SeedSequence``, PCG64, Lemire's bounded integers): the same numbers and the same
``bit_generator.state`` as ``numpy.random.default_rng`` on the same seed. Any other call (``normal``,
``choice``, ``size=...``, any other method) hands the stream over to a real ``numpy.random.Generator`` at the
same state, which serves it from then on; so every method of a Generator works, and gives what it would.

    >>> import numpy as np
    >>> ours, numpys = spawn_streams(7)[0], np.random.default_rng(np.random.SeedSequence(7).spawn(2)[0])
    >>> [ours.random(), ours.integers(10), ours.uniform(1.0, 2.0)] == [numpys.random(), numpys.integers(10),
    ...                                                                 numpys.uniform(1.0, 2.0)]
    True
    >>> bool(ours.normal() == numpys.normal())  # served by numpy, from the same state
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import numpy.random

__all__ = ["seeded", "spawn_streams", "Stream", "unseeded"]

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_MASK128 = (1 << 128) - 1
# SeedSequence's hash constants (numpy.random.bit_generator) and PCG64's 128-bit multiplier (pcg64.h).
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_POOL_SIZE = 4
_PCG_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _words(value: int) -> list[int]:
    """A non-negative int as 32-bit words, least significant first (``SeedSequence``'s coercion)."""
    if value == 0:
        return [0]
    words = []
    while value > 0:
        words.append(value & _MASK32)
        value >>= 32
    return words


def _seed_sequence_state(entropy: int, spawn_key: Sequence[int], n_words: int) -> list[int]:
    """``SeedSequence(entropy, spawn_key=spawn_key).generate_state(n_words, np.uint32)``."""
    run = _words(entropy)
    spawn = [word for key in spawn_key for word in _words(key)]
    if spawn and len(run) < _POOL_SIZE:
        run += [0] * (_POOL_SIZE - len(run))
    entropy_words = run + spawn
    hash_const = _INIT_A

    def hashmix(value: int) -> int:
        nonlocal hash_const
        value ^= hash_const
        hash_const = (hash_const * _MULT_A) & _MASK32
        value = (value * hash_const) & _MASK32
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        result = (_MIX_MULT_L * x - _MIX_MULT_R * y) & _MASK32
        return result ^ (result >> 16)

    pool = [hashmix(entropy_words[i] if i < len(entropy_words) else 0) for i in range(_POOL_SIZE)]
    for source in range(_POOL_SIZE):
        for target in range(_POOL_SIZE):
            if source != target:
                pool[target] = mix(pool[target], hashmix(pool[source]))
    for source in range(_POOL_SIZE, len(entropy_words)):
        for target in range(_POOL_SIZE):
            pool[target] = mix(pool[target], hashmix(entropy_words[source]))
    state, hash_const = [], _INIT_B
    for index in range(n_words):
        value = pool[index % _POOL_SIZE] ^ hash_const
        hash_const = (hash_const * _MULT_B) & _MASK32
        value = (value * hash_const) & _MASK32
        state.append(value ^ (value >> 16))
    return state


class _BitGenerator:
    """``stream.bit_generator`` before the stream is handed to numpy: its ``state``, as PCG64's."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    @property
    def state(self) -> dict[str, Any]:
        return self._stream._state_dict()

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self._stream._set_state(value)


class Stream:
    """A ``numpy.random.Generator`` on PCG64, seeded from a ``SeedSequence``; scalar ``random``, ``integers`` and
    ``uniform`` computed here, everything else by numpy from the same state (see the module docstring)."""

    def __init__(self, entropy: int, spawn_key: Sequence[int] = ()) -> None:
        words = _seed_sequence_state(entropy, spawn_key, 8)
        seed = [words[i] | (words[i + 1] << 32) for i in range(0, 8, 2)]  # as uint64, little-endian pairs
        self._inc = ((((seed[2] << 64) | seed[3]) << 1) | 1) & _MASK128
        state = self._inc  # PCG's srandom: from state 0, one step (0 * multiplier + inc), the seed added, one step
        state = (state + ((seed[0] << 64) | seed[1])) & _MASK128
        self._state = (state * _PCG_MULTIPLIER + self._inc) & _MASK128
        self._has_uint32 = 0
        self._uinteger = 0
        self._numpy: numpy.random.Generator | None = None  # once handed over

    # -- PCG64 -------------------------------------------------------------------------------------------------
    def _next64(self) -> int:
        state = self._state = (self._state * _PCG_MULTIPLIER + self._inc) & _MASK128
        value = ((state >> 64) ^ state) & _MASK64
        rotation = state >> 122
        return ((value >> rotation) | (value << ((-rotation) & 63))) & _MASK64

    def _next32(self) -> int:
        if self._has_uint32:
            self._has_uint32 = 0
            return self._uinteger
        value = self._next64()
        self._has_uint32, self._uinteger = 1, value >> 32
        return value & _MASK32

    def _state_dict(self) -> dict[str, Any]:
        return {"bit_generator": "PCG64", "state": {"state": self._state, "inc": self._inc},
                "has_uint32": self._has_uint32, "uinteger": self._uinteger}

    def _set_state(self, value: Any) -> None:
        try:
            if value["bit_generator"] != "PCG64":
                raise ValueError
            state, inc = int(value["state"]["state"]), int(value["state"]["inc"])
            has_uint32, uinteger = int(value["has_uint32"]), int(value["uinteger"])
        except (TypeError, KeyError, ValueError):
            self._handed_over().bit_generator.state = value  # numpy says what is wrong with it
            return
        if self._numpy is not None:
            self._numpy.bit_generator.state = value
            return
        self._state, self._inc = state & _MASK128, inc & _MASK128
        self._has_uint32, self._uinteger = has_uint32, uinteger & _MASK32

    # -- numpy, for everything else ----------------------------------------------------------------------------
    def _handed_over(self) -> numpy.random.Generator:
        """The numpy Generator that serves this stream from now on, at the state the stream has reached."""
        if self._numpy is None:
            import numpy.random

            generator = numpy.random.Generator(numpy.random.PCG64())
            generator.bit_generator.state = self._state_dict()
            self._numpy = generator
        return self._numpy

    @property
    def bit_generator(self) -> Any:
        return self._numpy.bit_generator if self._numpy is not None else _BitGenerator(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_numpy", "_state", "_inc", "_has_uint32", "_uinteger"):
            raise AttributeError(name)
        return getattr(self._handed_over(), name)

    def __repr__(self) -> str:
        return f"Stream(PCG64{', handed to numpy' if self._numpy is not None else ''})"

    # -- the draws a run makes ---------------------------------------------------------------------------------
    def random(self, *args: Any, **kwargs: Any) -> Any:
        """``Generator.random()``: a float in [0, 1)."""
        if self._numpy is not None or args or kwargs:
            return self._handed_over().random(*args, **kwargs)
        return self._double()

    def _double(self) -> float:
        """numpy's ``next_double``: the top 53 bits of a 64-bit draw, scaled to [0, 1)."""
        return (self._next64() >> 11) * (1.0 / 9007199254740992.0)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, *args: Any, **kwargs: Any) -> Any:
        """``Generator.uniform(low, high)``: ``low + (high - low) * random()``."""
        if self._numpy is None and not args and not kwargs and _is_real(low) and _is_real(high):
            span = float(high) - float(low)
            if math.isfinite(span) and span >= 0:
                return float(low) + span * self._double()
        return self._handed_over().uniform(low, high, *args, **kwargs)

    def integers(self, low: Any, high: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``Generator.integers(low, high)`` (``high`` excluded; one argument: from 0): a numpy int64."""
        if self._numpy is None and not args and not kwargs and _is_int(low) and (high is None or _is_int(high)):
            first, last = (0, int(low) - 1) if high is None else (int(low), int(high) - 1)
            if _INT64_MIN <= first <= last <= _INT64_MAX:
                return np.int64(first + self._bounded(last - first))
        return self._handed_over().integers(low, high, *args, **kwargs)

    def _bounded(self, span: int) -> int:
        """A uniform int in [0, span] (numpy's ``random_bounded_uint64_fill`` without masking: Lemire's method)."""
        if span == 0:
            return 0
        if span <= _MASK32:
            if span == _MASK32:
                return self._next32()
            return _lemire(self._next32, span, 32)
        if span == _MASK64:
            return self._next64()
        return _lemire(self._next64, span, 64)


def _lemire(draw: Callable[[], int], span: int, bits: int) -> int:
    mask, excluded = (1 << bits) - 1, span + 1
    product = draw() * excluded
    leftover = product & mask
    if leftover < excluded:
        threshold = (mask - span) % excluded
        while leftover < threshold:
            product = draw() * excluded
            leftover = product & mask
    return product >> bits


def _is_real(value: Any) -> bool:
    return type(value) in (float, int) or isinstance(value, (np.floating, np.integer))


def _is_int(value: Any) -> bool:
    return type(value) is int or isinstance(value, np.integer)


def spawn_streams(seed: int, count: int = 2) -> list[numpy.random.Generator]:
    """``[default_rng(s) for s in SeedSequence(seed).spawn(count)]``, as :class:`Stream` objects (typed as the
    numpy Generators they act as).

        >>> import numpy as np
        >>> spawn_streams(0)[1].bit_generator.state == np.random.default_rng(
        ...     np.random.SeedSequence(0).spawn(2)[1]).bit_generator.state
        True
    """
    return [seeded(seed, (index,)) for index in range(count)]


def seeded(entropy: int, spawn_key: Sequence[int] = ()) -> numpy.random.Generator:
    """``default_rng(SeedSequence(entropy, spawn_key=spawn_key))`` as a :class:`Stream`.

        >>> import numpy as np
        >>> bool(seeded(42).integers(1000) == np.random.default_rng(42).integers(1000))
        True
    """
    return cast("numpy.random.Generator", Stream(entropy, spawn_key))


def unseeded() -> numpy.random.Generator:
    """A stream seeded from the OS's entropy, as ``numpy.random.default_rng()`` (128 bits of it)."""
    return seeded(int.from_bytes(os.urandom(16), "little"))
