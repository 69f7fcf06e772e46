"""Write the table of Ray Tune's public names that ``pbtlab run`` and ``pbtlab.tune`` answer for
(``src/pbtlab/compat/ray/ray_tune_names.json``), from the installed Ray wheel.

    python scripts/ray_tune_names.py            # rewrites the table; tests/test_ray_names.py checks it is current

Public names of a module: its ``__all__``, or else the classes, functions and constants it defines itself
(not what it imports), none starting with ``_``. Modules under ``ray.tune.examples`` are Ray's own example
code, read from the wheel when a script imports them, so they are not listed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import pkgutil
import sys

SKIPPED_PACKAGES = ("ray.tune.examples", "ray.tune.tests", "ray.tune.automl", "ray.tune.cli")


def public_names(module) -> list[str]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return sorted(set(declared))
    names = []
    for name, value in vars(module).items():
        if name.startswith("_") or inspect.ismodule(value):
            continue
        defined_here = getattr(value, "__module__", module.__name__) == module.__name__
        constant = isinstance(value, (str, int, float, tuple, frozenset))
        if (inspect.isclass(value) or inspect.isfunction(value)) and defined_here or constant:
            names.append(name)
    return sorted(names)


def names_in_source(folder: str, name: str) -> list[str] | None:
    """A module that cannot be imported here: its ``__all__`` or top-level classes and functions, read from
    its source."""
    path = os.path.join(folder, name.rsplit(".", 1)[1] + ".py")
    if not os.path.exists(path):
        return None
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return sorted(ast.literal_eval(node.value))
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not node.name.startswith("_"):
            names.append(node.name)
    return sorted(names)


def constants_of(module, names: list[str]) -> dict[str, object]:
    """The module's public constants (strings, numbers, tuples of them), with their values: these are
    given to scripts as they are (``SHOULD_CHECKPOINT = "should_checkpoint"``)."""
    out = {}
    for name in names:
        if name in PER_PROCESS:
            continue
        value = getattr(module, name, None)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) or (
                isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


CONSTANTS: dict[str, dict[str, object]] = {}
#: Values set when Ray is imported (not facts of the API): listed as names only.
PER_PROCESS = {"START_OF_TIME"}


def ray_tune_modules() -> dict[str, list[str]]:
    import ray.tune

    table = {"ray.tune": public_names(ray.tune)}
    for info in pkgutil.walk_packages(ray.tune.__path__, "ray.tune.", onerror=lambda name: None):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")) or name.startswith(SKIPPED_PACKAGES):
            continue
        try:
            module = importlib.import_module(name)
        except Exception as error:  # an optional dependency (keras, xgboost...) is missing: names from the source
            names = names_in_source(info.module_finder.path, name)  # type: ignore[union-attr]
            if names is None:
                print(f"skipped {name}: {type(error).__name__}: {error}", file=sys.stderr)
            else:
                table[name] = names
            continue
        table[name] = public_names(module)
        constants = constants_of(module, table[name])
        if constants:
            CONSTANTS[name] = constants
    return table


def current_table() -> dict[str, object]:
    import ray

    return {"ray_version": ray.__version__, "modules": ray_tune_modules(), "constants": CONSTANTS}


def main() -> None:
    if sys.argv[1:] == ["--print"]:  # for tests/test_ray_names.py
        print(json.dumps(current_table(), sort_keys=True))
        return
    table = current_table()
    path = os.path.join(os.path.dirname(__file__), "..", "src", "pbtlab", "compat", "ray", "ray_tune_names.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(table, handle, indent=0, sort_keys=True)
        handle.write("\n")
    print(f"{sum(map(len, table['modules'].values()))} names in {len(table['modules'])} modules -> {path}")


if __name__ == "__main__":
    main()
