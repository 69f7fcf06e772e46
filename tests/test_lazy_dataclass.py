"""`pbtlab.lazy_dataclass.dataclass` behaves as `dataclasses.dataclass` does, and compiles `__init__` on first use."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbtlab import lazy_dataclass

FLAGS = [dict(), dict(frozen=True), dict(slots=True), dict(frozen=True, slots=True),
         dict(frozen=True, slots=True, kw_only=True, repr=False, eq=False), dict(eq=False), dict(kw_only=True)]


def _pair(flags, body: str):
    """The same class body under both decorators."""
    classes = []
    for decorator in (dataclasses.dataclass, lazy_dataclass.dataclass):
        namespace = {"dataclasses": dataclasses, "decorator": decorator, "flags": flags}
        exec(f"@decorator(**flags)\nclass Thing:\n{body}", namespace)
        classes.append(namespace["Thing"])
    return classes


BODY = ("    a: int\n"
        "    b: str = 'x'\n"
        "    c: list = dataclasses.field(default_factory=list)\n"
        "    d: float = dataclasses.field(default=1.5, compare=False, repr=False)\n"
        "    e: int = dataclasses.field(default=0, kw_only=True)\n")


@pytest.mark.parametrize("flags", FLAGS, ids=str)
def test_same_behaviour_as_dataclasses(flags):
    standard, lazy = _pair(flags, BODY)
    assert str(inspect.signature(lazy)) == str(inspect.signature(standard))
    args = {"a": 1, "b": "y", "e": 3}
    s, z = standard(**args), lazy(**args)
    assert dataclasses.asdict(s) == dataclasses.asdict(z) == {"a": 1, "b": "y", "c": [], "d": 1.5, "e": 3}
    assert repr(s).replace("Thing", "T") == repr(z).replace("Thing", "T") or not flags.get("repr", True)
    assert z.c is not lazy(**args).c  # a new list per instance
    if flags.get("eq", True):
        assert z == lazy(**args) and z == dataclasses.replace(z, d=9.0)  # d is not compared
        assert z != dataclasses.replace(z, a=2)
        assert (z.__hash__ is None) == (s.__hash__ is None)
    else:
        assert z != lazy(**args) and z == z
    if flags.get("frozen"):
        with pytest.raises(dataclasses.FrozenInstanceError, match="'a'"):
            z.a = 5
        with pytest.raises(dataclasses.FrozenInstanceError):
            del z.a
    else:
        z.a = 5
        assert z.a == 5
    with pytest.raises(TypeError, match="missing 1 required"):
        lazy() if not flags.get("kw_only") else lazy(b="y")


@pytest.mark.parametrize("flags", [dict(), dict(frozen=True, slots=True, kw_only=True)], ids=str)
def test_string_annotations_and_class_variables_read_as_dataclasses_reads_them(flags, monkeypatch):
    """The annotations are hidden from dataclasses while it collects the fields (it would parse each string);
    afterwards the class and its fields show the source's strings, and a ClassVar and KW_ONLY are what
    dataclasses makes of them."""
    body = ("from __future__ import annotations\n"
            "import dataclasses\n"
            "from typing import Any, ClassVar\n"
            "@decorator(**flags)\n"
            "class Thing:\n"
            "    kind: ClassVar[str] = 'thing'\n"
            "    a: int\n"
            "    b: dict[str, Any] = dataclasses.field(default_factory=dict)\n"
            "    _: dataclasses.KW_ONLY\n"
            "    c: float | None = None\n")
    classes = []
    for decorator in (dataclasses.dataclass, lazy_dataclass.dataclass):
        module = types.ModuleType("annotations_test")  # dataclasses looks names up in the class's module
        monkeypatch.setitem(sys.modules, module.__name__, module)
        module.__dict__.update(decorator=decorator, flags=flags)
        exec(body, module.__dict__)
        classes.append(module.Thing)
    standard, lazy = classes
    assert lazy.__annotations__ == standard.__annotations__ == {
        "kind": "ClassVar[str]", "a": "int", "b": "dict[str, Any]", "_": "dataclasses.KW_ONLY", "c": "float | None"}
    described = [[(f.name, f.type, f.kw_only) for f in dataclasses.fields(cls)] for cls in classes]
    assert described[1] == described[0] == [("a", "int", flags.get("kw_only", False)),
                                             ("b", "dict[str, Any]", flags.get("kw_only", False)),
                                             ("c", "float | None", True)]
    assert lazy.kind == "thing"  # a class variable: dataclasses keeps it as a pseudo-field, outside fields()
    assert repr(lazy.__dataclass_fields__["kind"]) == repr(standard.__dataclass_fields__["kind"])
    assert str(inspect.signature(lazy)) == str(inspect.signature(standard))


def test_frozen_hash_follows_the_compared_fields():
    standard, lazy = _pair(dict(frozen=True), BODY)
    assert hash(lazy(a=1, c=(1,))) == hash(lazy(a=1, c=(1,), d=7.0))
    assert {lazy(a=1, c=()), lazy(a=1, c=())} == {lazy(a=1, c=())}


@lazy_dataclass.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: int
    c: list = dataclasses.field(default_factory=list)


@lazy_dataclass.dataclass(frozen=True)
class FrozenDict:
    a: int
    c: list = dataclasses.field(default_factory=list)


@pytest.mark.parametrize("kind", [FrozenSlots, FrozenDict])
def test_frozen_instances_pickle_and_copy(kind):
    thing = kind(a=1, c=[2])
    for other in (pickle.loads(pickle.dumps(thing)), copy.copy(thing), copy.deepcopy(thing)):
        assert other == thing and other.c == [2] and type(other) is kind


@lazy_dataclass.dataclass
class WithPostInit:
    x: int
    doubled: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.doubled = 2 * self.x


def test_post_init_and_init_false_fields():
    thing = WithPostInit(3)
    assert (thing.x, thing.doubled) == (3, 6)
    assert str(inspect.signature(WithPostInit)) == "(x: 'int') -> None"


def test_init_runs_from_its_plan_until_the_class_is_used_often_then_compiles():
    @lazy_dataclass.dataclass(slots=True)
    class Fresh:
        n: int
        tags: list = dataclasses.field(default_factory=list)

    stand_in = Fresh.__dict__["__init__"]
    assert isinstance(stand_in, lazy_dataclass._LazyInit) and stand_in.owner is Fresh
    made = [Fresh(k) for k in range(lazy_dataclass.COMPILE_AFTER)]
    assert Fresh.__dict__["__init__"] is stand_in and stand_in.calls == lazy_dataclass.COMPILE_AFTER
    assert [m.n for m in made] == list(range(lazy_dataclass.COMPILE_AFTER))
    assert len({id(m.tags) for m in made}) == len(made)  # a new list per instance
    Fresh(-1)
    compiled = Fresh.__dict__["__init__"]
    assert compiled is not stand_in and compiled.__compiled_for__ is Fresh
    assert Fresh(2) == Fresh(2, []) and Fresh.__dict__["__init__"] is compiled


def test_looking_init_up_on_the_class_compiles_it():
    @lazy_dataclass.dataclass
    class Fresh:
        n: int

    Fresh(1)
    assert isinstance(Fresh.__dict__["__init__"], lazy_dataclass._LazyInit)
    assert Fresh.__init__.__compiled_for__ is Fresh and Fresh.__dict__["__init__"].__compiled_for__ is Fresh


def _outcome(cls, args, kwargs):
    try:
        thing = cls(*args, **kwargs)
    except TypeError as error:
        return "error", str(error)
    return "made", dataclasses.asdict(thing), getattr(thing, "seen", None)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["plain", "default", "factory", "kw", "kw_required", "no_init", "no_init_factory"]),
                min_size=0, max_size=6),
       st.sampled_from(FLAGS), st.integers(0, 7),
       st.lists(st.sampled_from(["f0", "f1", "f2", "f3", "f5", "g"]), max_size=4, unique=True), st.booleans())
def test_init_by_plan_binds_and_fails_as_the_compiled_init(specs, flags, positional, keywords, post_init):
    """Before a class compiles its ``__init__``, calls bind their arguments as the compiled one does: the same
    fields, ``default_factory`` per instance, ``__post_init__``, and the same ``TypeError`` messages."""
    lines, seen_default = [], False
    for index, kind in enumerate(specs):
        if kind == "plain" and seen_default and not flags.get("kw_only"):
            kind = "default"
        seen_default = seen_default or kind in ("default", "factory")
        line = {"plain": "int", "default": f"int = {index}", "factory": "list = dataclasses.field(default_factory=list)",
                "kw": f"int = dataclasses.field(default={index}, kw_only=True)",
                "kw_required": "int = dataclasses.field(kw_only=True)",
                "no_init": f"int = dataclasses.field(default={index}, init=False)",
                "no_init_factory": "list = dataclasses.field(default_factory=list, init=False)"}[kind]
        lines.append(f"    f{index}: {line}")
    if post_init:
        lines.append("    def __post_init__(self):\n        object.__setattr__(self, 'seen', len(dataclasses.fields(self)))")
    flags = {**flags, "slots": False} if post_init else flags  # the hook sets an attribute that is not a field
    standard, lazy = _pair(flags, "\n".join(lines) + "\n" if lines else "    pass\n")
    args = tuple(range(100, 100 + positional))
    kwargs = {name: 200 + i for i, name in enumerate(keywords)}
    expected = _outcome(standard, args, kwargs)
    assert _outcome(lazy, args, kwargs) == expected
    assert isinstance(lazy.__dict__["__init__"], lazy_dataclass._LazyInit)  # that was the plan, not compiled code
    lazy.__init__  # compile it: the compiled one gives the same
    assert _outcome(lazy, args, kwargs) == expected


def test_subclasses_get_their_own_init():
    @lazy_dataclass.dataclass(kw_only=True)
    class Base:
        a: int

    @lazy_dataclass.dataclass(kw_only=True)
    class Child(Base):
        b: int = 2

    class Plain(Child):  # not decorated: inherits Child's __init__
        pass

    assert (Child(a=1).a, Child(a=1).b) == (1, 2)
    assert (Plain(a=4, b=5).a, Plain(a=4, b=5).b) == (4, 5)
    assert Base(a=3) == Base(a=3) and Base(a=3) != Child(a=3)
    with pytest.raises(TypeError):
        Base(a=1, b=2)


def test_own_methods_are_kept():
    @lazy_dataclass.dataclass
    class Custom:
        a: int

        def __repr__(self) -> str:
            return "custom"

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert repr(Custom(1)) == "custom" and Custom(1) == Custom(2) and hash(Custom(1)) is not None


def test_definition_errors_as_dataclasses_gives_them():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @lazy_dataclass.dataclass
        class Bad:
            a: int = 0
            b: int

    @lazy_dataclass.dataclass
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="frozen"):
        @lazy_dataclass.dataclass(frozen=True)
        class FrozenChild(Mutable):
            b: int = 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["plain", "default", "factory", "kw"]), st.booleans()),
                min_size=0, max_size=6),
       st.sampled_from(FLAGS))
def test_random_field_lists_match_dataclasses(specs, flags):
    """Any mix of required, defaulted, factory and keyword-only fields: same signature, fields and repr."""
    lines, seen_default = [], False
    for index, (kind, compare) in enumerate(specs):
        if kind == "plain" and seen_default and not flags.get("kw_only"):
            kind = "default"
        seen_default = seen_default or kind in ("default", "factory")
        name = f"f{index}"
        if kind == "plain":
            lines.append(f"    {name}: int = dataclasses.field(compare={compare})")
        elif kind == "default":
            lines.append(f"    {name}: int = dataclasses.field(default={index}, compare={compare})")
        elif kind == "factory":
            lines.append(f"    {name}: tuple = dataclasses.field(default_factory=tuple, compare={compare})")
        else:
            lines.append(f"    {name}: int = dataclasses.field(default={index}, kw_only=True)")
    standard, lazy = _pair(flags, "\n".join(lines) + "\n" if lines else "    pass\n")
    assert str(inspect.signature(lazy)) == str(inspect.signature(standard))
    required = {f.name: 10 + i for i, f in enumerate(dataclasses.fields(standard))
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    s, z = standard(**required), lazy(**required)
    assert dataclasses.asdict(s) == dataclasses.asdict(z)
    if flags.get("repr", True):
        assert repr(s) == repr(z)
    if flags.get("eq", True):
        assert (s == standard(**required)) == (z == lazy(**required))
        if flags.get("frozen"):
            assert hash(s) == hash(z)


def test_import_pbtlab_compiles_no_dataclass_method():
    """`import pbtlab` defines its classes without compiling a method (the point of the module), the PBT
    strategies (which users subclass) included."""
    script = ("import dataclasses\ncount, compiled = [0], []\n"
              "create, process = dataclasses._create_fn, dataclasses._process_class\n"
              "def counting(*args, **kwargs):\n    count[0] += 1\n    return create(*args, **kwargs)\n"
              "def processing(cls, *args, **kwargs):\n    before = count[0]\n"
              "    result = process(cls, *args, **kwargs)\n"
              "    if count[0] > before: compiled.append(cls.__qualname__)\n    return result\n"
              "dataclasses._create_fn, dataclasses._process_class = counting, processing\n"
              "import pbtlab\nfrom pbtlab import tune, Tuner, TuneConfig\n"
              "from pbtlab.schedulers import PopulationBasedTraining\nprint(' '.join(sorted(compiled)))")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.split() == []


def test_a_frozen_subclass_of_a_frozen_dataclasses_class_falls_back_to_dataclasses():
    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: int

    @lazy_dataclass.dataclass(frozen=True)
    class Child(Plain):
        b: int = 2

    child = Child(1)
    assert (child.a, child.b) == (1, 2) and child == Child(1, 2) and hash(child) == hash(Child(1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        child.b = 3


def test_users_can_subclass_the_pbt_strategies_with_frozen_dataclasses():
    """The strategies are public and meant to be extended with dataclasses, as plain frozen dataclasses are:
    frozen subclasses work, unfrozen ones are refused with dataclasses' own error."""
    from pbtlab.schedulers.strategies import BinaryTournament, Perturb, Resample, TTest, Truncation

    @dataclasses.dataclass(frozen=True)
    class MyTruncation(Truncation):
        note: str = "mine"

    @dataclasses.dataclass(frozen=True)
    class MyTTest(TTest):
        note: str = "mine"

    @dataclasses.dataclass(frozen=True)
    class MyPerturb(Perturb):
        note: str = "mine"

    assert MyTruncation().note == "mine" and MyPerturb().note == "mine"
    mine = MyTTest(window=5, note="x")
    assert (mine.window, mine.significance, mine.note) == (5, 0.05, "x")
    assert mine == MyTTest(5, 0.05, "x") and hash(mine) == hash(MyTTest(5, 0.05, "x")) and mine != TTest(5)
    assert repr(mine).endswith("MyTTest(window=5, significance=0.05, note='x')")
    assert dataclasses.replace(mine, window=7) == MyTTest(7, 0.05, "x")
    assert [f.name for f in dataclasses.fields(MyTTest)] == ["window", "significance", "note"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.window = 3  # type: ignore[misc]
    for strategy in (Truncation, BinaryTournament, TTest, Perturb, Resample):
        assert dataclasses.is_dataclass(strategy) and strategy.__dataclass_params__.frozen
        with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):
            dataclasses.dataclass(type("Unfrozen", (strategy,), {"__annotations__": {"x": int}, "x": 0}))


def test_the_pbt_strategies_behave_as_the_plain_dataclasses_they_were():
    """Made here now, they compare, hash, print, copy and pickle as plain frozen dataclasses of the same fields."""
    import copy
    import pickle

    from pbtlab.schedulers.strategies import Perturb, Resample, TTest

    def plain_twin(cls: type) -> type:
        annotations = {f.name: f.type for f in dataclasses.fields(cls)}
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        return dataclasses.dataclass(frozen=True)(type(cls.__name__, (), {"__annotations__": annotations,
                                                                           "__qualname__": cls.__qualname__,
                                                                           **defaults}))

    for made, kwargs in ((TTest(window=4, significance=0.1), {"window": 4, "significance": 0.1}),
                         (Perturb(), {}), (Resample(), {})):
        twin = plain_twin(type(made))(**kwargs)
        assert repr(made) == repr(twin)
        assert dataclasses.asdict(made) == dataclasses.asdict(twin)
        assert made == type(made)(**kwargs) and hash(made) == hash(type(made)(**kwargs))
        assert pickle.loads(pickle.dumps(made)) == made and copy.deepcopy(made) == made
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.extra = 1  # type: ignore[attr-defined]


def test_type_hints_of_init_resolve_as_with_dataclasses():
    """Tools that build command lines or forms from a config class read ``get_type_hints(cls.__init__)``."""
    import typing

    from pbtlab.config import FailureConfig, RunConfig

    hints = typing.get_type_hints(RunConfig.__init__)
    assert hints["failure_config"] == FailureConfig | None and hints["return"] is type(None)
    assert typing.get_type_hints(FailureConfig.__init__) == {"max_failures": int, "fail_fast": bool,
                                                             "return": type(None)}
    assert "__make_init__" not in vars(sys.modules[RunConfig.__module__])  # the module's namespace is untouched
