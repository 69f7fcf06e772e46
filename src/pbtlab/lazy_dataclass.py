"""Dataclasses whose generated methods are compiled when first used, not when the class is defined.

Python 3.11's :func:`dataclasses.dataclass` compiles each method it generates (``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, and a frozen class's ``__setattr__`` and ``__delattr__``) with its own ``exec`` when
the class is defined: about 0.3-0.9 ms a class on the 2-core machine, and pbtlab defines about fifty on
``import pbtlab``, half of that import's time. :func:`dataclass` lets :mod:`dataclasses` collect the fields
(``fields``, ``replace``, ``asdict`` and ``is_dataclass`` work as usual) and adds the methods itself:

- ``__init__`` is compiled for the class once the class has made :data:`COMPILE_AFTER` instances, or when
  tools such as ``inspect.signature`` and ``typing.get_type_hints`` look it up (the same code
  :mod:`dataclasses` writes: one assignment per field, ``default_factory`` called per instance,
  ``__post_init__``), so a run compiles only the classes it makes often. Until then, a loop over the fields
  binds the arguments and sets them, with the same results and the same ``TypeError`` messages;
- ``__repr__``, ``__eq__`` and ``__hash__`` are shared functions (no ``exec``); ``==`` and ``hash`` read a
  class's compared fields through one ``operator.attrgetter`` made when the class is defined;
- a frozen class shares one ``__setattr__`` and ``__delattr__`` raising :class:`dataclasses.FrozenInstanceError`,
  and a frozen slotted class pickles and copies through ``__getstate__`` / ``__setstate__``.

It takes the arguments of :func:`dataclasses.dataclass` that pbtlab uses (``init``, ``repr``, ``eq``,
``frozen``, ``slots``, ``kw_only``) and, like it, leaves a method the class defines itself alone.
``inspect.signature`` and ``typing.get_type_hints`` see the generated ``__init__``.

A frozen class made here says so as :mod:`dataclasses` does (``__dataclass_params__.frozen``), so users can
extend it with a frozen ``dataclasses.dataclass`` (the PBT strategies are made here and meant to be extended),
and, as with :mod:`dataclasses`, not with an unfrozen one.

    >>> @dataclass(frozen=True, slots=True)
    ... class Point:
    ...     x: float
    ...     y: float = 0.0
    >>> Point(1.0), Point(1.0) == Point(1.0, 0.0), dataclasses.replace(Point(1.0), y=2.0)
    (Point(x=1.0, y=0.0), True, Point(x=1.0, y=2.0))
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib
import sys
from typing import Any, Callable, TypeVar, dataclass_transform, overload

__all__ = ["dataclass"]

_T = TypeVar("_T", bound=type)


class _Factory:
    """The default of a parameter whose field has a ``default_factory`` (shown as ``<factory>``)."""

    def __repr__(self) -> str:
        return "<factory>"


_NO_VALUE = _Factory()


@overload
def dataclass(cls: _T, /) -> _T: ...


@overload
def dataclass(*, init: bool = True, repr: bool = True, eq: bool = True, frozen: bool = False,
              slots: bool = False, kw_only: bool = False) -> Callable[[_T], _T]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def dataclass(cls: Any = None, /, *, init: bool = True, repr: bool = True, eq: bool = True,  # noqa: A002
              frozen: bool = False, slots: bool = False, kw_only: bool = False) -> Any:
    """:func:`dataclasses.dataclass` with its methods compiled on first use (see the module's docstring).

        >>> @dataclass(kw_only=True)
        ... class Config:
        ...     name: str
        ...     tags: list = dataclasses.field(default_factory=list)
        >>> Config(name="a").tags is not Config(name="a").tags
        True
    """

    def wrap(cls: _T) -> _T:
        return _process(cls, init=init, repr=repr, eq=eq, frozen=frozen, slots=slots, kw_only=kw_only)

    return wrap if cls is None else wrap(cls)


def _process(cls: _T, *, init: bool, repr: bool, eq: bool, frozen: bool, slots: bool,  # noqa: A002
             kw_only: bool) -> _T:
    own = set(cls.__dict__)  # what the class defines itself, before dataclasses adds anything
    documented = cls.__dict__.get("__doc__") is not None
    for base in cls.__mro__[1:]:
        params = base.__dict__.get("__dataclass_params__")
        if params is None:
            continue
        if "__dataclass_frozen__" not in base.__dict__ and params.frozen:
            # a frozen class of dataclasses' own: its subclass must be one too (dataclasses checks the flag)
            return dataclasses.dataclass(cls, init=init, repr=repr, eq=eq, frozen=frozen,  # type: ignore[return-value]
                                         slots=slots, kw_only=kw_only)
        if base.__dict__.get("__dataclass_frozen__", params.frozen) != frozen:
            raise TypeError(f"cannot inherit {'frozen' if frozen else 'non-frozen'} dataclass {cls.__name__} "
                            f"from a {'non-frozen' if frozen else 'frozen'} one, {base.__name__}")
    if not documented:
        # a placeholder, taken off below: for a class without a docstring, dataclasses would write the signature
        # of one with no __init__ yet, through inspect.signature, whose first use compiles tokenize's regexes
        # (about 1.4 ms of ``import pbtlab`` when three of its classes had none)
        cls.__doc__ = "-"
    # dataclasses lets only frozen classes subclass a frozen one, and the call below makes no frozen methods (they
    # are added after it): while it runs, the frozen classes made here among the bases say they are not
    frozen_bases = [base.__dict__["__dataclass_params__"] for base in cls.__mro__[1:]
                    if base.__dict__.get("__dataclass_frozen__") and "__dataclass_params__" in base.__dict__]
    for params in frozen_bases:
        params.frozen = False
    annotations = _hide_annotations(cls)
    try:
        cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False,  # type: ignore[assignment]
                                    frozen=False, slots=slots, kw_only=kw_only)
    finally:
        for params in frozen_bases:
            params.frozen = True
        if annotations is not None:
            _show_annotations(cls, annotations)
    if frozen:  # as dataclasses would say: so that a frozen dataclasses.dataclass may subclass this class
        cls.__dataclass_params__.frozen = True  # type: ignore[attr-defined]
    fields = dataclasses.fields(cls)
    if any(isinstance(f.type, dataclasses.InitVar) or (isinstance(f.type, str) and "InitVar" in f.type)
           for f in cls.__dataclass_fields__.values()):  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__}: InitVar fields need dataclasses.dataclass")
    seen_default = False
    for f in fields:
        if f.init and not f.kw_only:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if seen_default and not has_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
            seen_default = seen_default or has_default
    cls.__dataclass_frozen__ = frozen  # type: ignore[attr-defined]
    # the fields ``==`` and ``hash`` use, read in one call (staticmethod: a lambda must not bind to the instance)
    cls.__compared__ = staticmethod(_values_of([f.name for f in fields if f.compare]))  # type: ignore[attr-defined]
    cls.__hashed__ = staticmethod(_values_of(  # type: ignore[attr-defined]
        [f.name for f in fields if (f.compare if f.hash is None else f.hash)]))
    if not documented:
        cls.__doc__ = None
    if init and "__init__" not in own:
        cls.__init__ = _LazyInit(cls)  # type: ignore[assignment, method-assign, misc]
    if repr and "__repr__" not in own:
        cls.__repr__ = _repr  # type: ignore[assignment, method-assign]
    if eq and "__eq__" not in own:
        cls.__eq__ = _eq  # type: ignore[assignment, method-assign]
    if "__hash__" not in own:
        if eq and frozen:
            cls.__hash__ = _hash  # type: ignore[assignment, method-assign]
        elif eq:
            cls.__hash__ = None  # type: ignore[assignment]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment, method-assign]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment, method-assign]
        if slots:
            cls.__getstate__ = _getstate  # type: ignore[assignment, method-assign]
            cls.__setstate__ = _setstate  # type: ignore[attr-defined, unused-ignore]
    return cls


class _Annotation:
    """What :func:`_hide_annotations` puts in place of an annotation while :mod:`dataclasses` reads a class."""

    def __repr__(self) -> str:
        return "<annotation>"


_HIDDEN = _Annotation()
#: Up to 3.13 :mod:`dataclasses` reads the class's ``__annotations__`` dict, which 3.14 computes lazily instead:
#: there nothing is hidden.
_HIDE = sys.version_info < (3, 14)


def _hide_annotations(cls: type) -> dict[str, Any] | None:
    """Let :mod:`dataclasses` skip parsing the class's string annotations (``from __future__ import
    annotations``), about a third of its time per class: each plain one becomes :data:`_HIDDEN` until
    :func:`_show_annotations`. Returns the class's own annotations (None: nothing hidden).

    For each string annotation :mod:`dataclasses` matches a regular expression and looks the first name up
    in the class's module, three times (is it a ``ClassVar``, an ``InitVar``, ``KW_ONLY``?). An annotation
    that names none of those cannot be any of them, as long as no alias of one is used (pbtlab's classes use
    none; this module makes only pbtlab's classes), and is hidden; one that names one is left as it is."""
    annotations = cls.__dict__.get("__annotations__")
    if not _HIDE or not annotations:
        return None
    hidden = {}
    for name, kind in annotations.items():
        plain = type(kind) is str and "ClassVar" not in kind and "InitVar" not in kind and "KW_ONLY" not in kind
        hidden[name] = _HIDDEN if plain else kind
    cls.__annotations__ = hidden
    return annotations  # type: ignore[no-any-return]


def _show_annotations(cls: type, annotations: dict[str, Any]) -> None:
    """Undo :func:`_hide_annotations` on ``cls`` (or the slotted class :mod:`dataclasses` made from it): its
    ``__annotations__`` and its fields' ``type`` are the strings of the source again."""
    cls.__annotations__ = annotations
    for f in cls.__dict__.get("__dataclass_fields__", {}).values():
        if f.type is _HIDDEN:
            f.type = annotations[f.name]


def _values_of(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from an instance to the tuple of its ``names`` attributes (C's ``attrgetter`` where it can)."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        (name,) = names
        return lambda self: (getattr(self, name),)
    return lambda self: ()


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    values = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
    return f"{type(self).__qualname__}({values})"


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    values = self.__compared__  # type: ignore[attr-defined]
    return values(self) == values(other)  # type: ignore[no-any-return]


def _hash(self: Any) -> int:
    return hash(self.__hashed__(self))  # type: ignore[attr-defined]


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state):
        object.__setattr__(self, f.name, value)


#: How many instances a class makes through :func:`_init_by_plan` before its ``__init__`` is compiled. The
#: plain loop costs 1-2 µs more per instance than the compiled method, and compiling costs 80-180 µs, so a class
#: made this often pays for its compile; most classes of a short run are made a few times and never compile.
COMPILE_AFTER = 64


class _LazyInit:
    """A class's ``__init__`` until the class has made :data:`COMPILE_AFTER` instances, or until the method is
    looked up on the class itself (``inspect.signature``, ``typing.get_type_hints``, ``Base.__init__(self)``).
    Until then, a call of the class initializes the instance with :func:`_init_by_plan`, a loop over the
    fields (no ``exec``). Then it compiles the real one for ``owner`` and puts it in the class's ``__dict__``
    in its place."""

    def __init__(self, owner: type) -> None:
        self.owner = owner
        self.calls = 0
        self._plan: _InitPlan | None = None

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is not None and self.calls < COMPILE_AFTER:
            self.calls += 1
            plan = self._plan
            if plan is None:
                plan = self._plan = _InitPlan(self.owner)
            return plan.bound(instance)
        init = _compile_init(self.owner, self._plan)
        return init if instance is None else init.__get__(instance, owner)


class _InitPlan:
    """What a class's ``__init__`` does, as data: which arguments it takes and what it sets, in order."""

    def __init__(self, owner: type) -> None:
        self.where = f"{owner.__qualname__}.__init__()"
        self.positional: list[str] = []
        self.positional_required = 0  # the leading positional parameters without a default
        self.keyword: list[str] = []
        self.required: list[str] = []  # init fields without a default, in order
        #: (name, whether an argument can set it, default, default_factory) per field that __init__ sets
        self.assign: list[tuple[str, bool, Any, Any]] = []
        for f in dataclasses.fields(owner):
            factory = f.default_factory
            if not f.init and f.default is dataclasses.MISSING and factory is dataclasses.MISSING:
                continue
            self.assign.append((f.name, f.init, f.default, factory))
            if not f.init:
                continue
            has_default = f.default is not dataclasses.MISSING or factory is not dataclasses.MISSING
            if f.kw_only:
                self.keyword.append(f.name)
            else:
                self.positional.append(f.name)
                if not has_default and len(self.positional) == self.positional_required + 1:
                    self.positional_required += 1
            if not has_default:
                self.required.append(f.name)
        self.accepted = frozenset(self.positional) | frozenset(self.keyword)
        self.set = object.__setattr__ if owner.__dataclass_frozen__ else setattr  # type: ignore[attr-defined]
        self.post_init = hasattr(owner, "__post_init__")

    def bound(self, instance: object) -> Callable[..., None]:
        def __init__(*args: Any, **kwargs: Any) -> None:
            _init_by_plan(self, instance, args, kwargs)

        return __init__


def _init_by_plan(plan: _InitPlan, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bind ``args`` and ``kwargs`` as the compiled ``__init__`` would (raising the same kinds of
    ``TypeError``), then set each field, call ``default_factory`` for each one not given, and
    ``__post_init__``."""
    values = kwargs
    if args:  # in Python's order: each keyword argument, then the count of positional ones
        values = dict(zip(plan.positional, args))
        for name, value in kwargs.items():
            if name not in plan.accepted:
                raise TypeError(f"{plan.where} got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{plan.where} got multiple values for argument {name!r}")
            values[name] = value
        if len(args) > len(plan.positional):
            raise TypeError(_too_many(plan, len(args), sum(name in kwargs for name in plan.keyword)))
    elif not plan.accepted.issuperset(kwargs):
        unexpected = next(name for name in kwargs if name not in plan.accepted)
        raise TypeError(f"{plan.where} got an unexpected keyword argument {unexpected!r}")
    if len(values) < len(plan.accepted):
        missing = [name for name in plan.required if name not in values]
        if missing:
            raise TypeError(_missing(plan, missing))
    set_field = plan.set
    for name, settable, default, factory in plan.assign:
        if settable and name in values:
            set_field(instance, name, values[name])
        elif factory is not dataclasses.MISSING:
            set_field(instance, name, factory())
        else:
            set_field(instance, name, default)
    if plan.post_init:
        instance.__post_init__()


def _too_many(plan: _InitPlan, given: int, keyword_only_given: int) -> str:
    most, least = len(plan.positional) + 1, plan.positional_required + 1  # Python counts self
    takes = f"{most} positional argument{'' if most == 1 else 's'}" if least == most else \
        f"from {least} to {most} positional arguments"
    counted = f"{given + 1}"
    if keyword_only_given:
        counted += (f" positional arguments (and {keyword_only_given} keyword-only argument"
                    f"{'' if keyword_only_given == 1 else 's'})")
    return f"{plan.where} takes {takes} but {counted} were given"


def _missing(plan: _InitPlan, missing: list[str]) -> str:
    positional = [name for name in missing if name in plan.positional]
    names, kind = (positional, "positional") if positional else (missing, "keyword-only")
    quoted = [repr(name) for name in names]
    listed = quoted[0] if len(quoted) == 1 else (
        f"{quoted[0]} and {quoted[1]}" if len(quoted) == 2 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}")
    return f"{plan.where} missing {len(names)} required {kind} argument{'s' if len(names) > 1 else ''}: {listed}"


def _compile_init(owner: type, plan: _InitPlan | None = None) -> Callable[..., None]:
    """Compile ``owner``'s ``__init__`` from its :class:`_InitPlan` (the code :mod:`dataclasses` writes) and put
    it in the class's ``__dict__``."""
    init = owner.__dict__["__init__"]
    if getattr(init, "__compiled_for__", None) is owner:
        return init  # type: ignore[no-any-return]
    plan = plan if plan is not None else _InitPlan(owner)
    frozen = owner.__dataclass_frozen__  # type: ignore[attr-defined]
    names: dict[str, Any] = {"_NO_VALUE": _NO_VALUE, "_set": object.__setattr__}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for name, settable, default, factory in plan.assign:
        if factory is not dataclasses.MISSING:
            names[f"_factory_{name}"] = factory
            parameter = f"{name}=_NO_VALUE"
            value = f"_factory_{name}() if {name} is _NO_VALUE else {name}" if settable else f"_factory_{name}()"
        elif default is not dataclasses.MISSING:
            names[f"_default_{name}"] = default
            parameter = f"{name}=_default_{name}"
            value = name if settable else f"_default_{name}"
        else:  # a required parameter
            parameter = value = name
        if settable:
            (keyword if name in plan.keyword else positional).append(parameter)
        body.append(f"_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    if plan.post_init:
        body.append("self.__post_init__()")
    parameters = ["self", *positional, *(["*", *keyword] if keyword else [])]
    # As dataclasses does: the helpers reach __init__ as a closure's variables, and its globals are the class's
    # module's, so typing.get_type_hints(cls.__init__) resolves the fields' annotations.
    source = (f"def __make_init__({', '.join(names)}):\n"
              f"    def __init__({', '.join(parameters)}):\n        " + "\n        ".join(body or ["pass"])
              + "\n    return __init__\n")
    module = sys.modules.get(owner.__module__)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{owner.__qualname__}.__init__>", "exec"),  # noqa: S102
         vars(module) if module is not None else {}, namespace)
    compiled = namespace["__make_init__"](**names)
    compiled.__qualname__ = f"{owner.__qualname__}.__init__"
    compiled.__module__ = owner.__module__
    compiled.__compiled_for__ = owner
    compiled.__annotations__ = {**{f.name: f.type for f in dataclasses.fields(owner) if f.init}, "return": None}
    owner.__init__ = compiled  # type: ignore[misc]
    return compiled  # type: ignore[no-any-return]
