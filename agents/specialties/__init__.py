"""The registry of specialties: one :class:`Specialty` object per kind of child, looked up by name.

Each of the seven built-in specialties lives in its own module here
(``agents/specialties/<name>.py``, a module-level ``SPECIALTY``): its id prefix, the data it eats,
its dataset builder, its genome space, whether a Tune grid may search it and how it is served.
Nothing else in the code keeps a table of specialties; everything reads the object.

**Plug-ins (an eighth specialty).** A plug-in is a ``Specialty`` object named by its import path,
``"package.module:ATTRIBUTE"`` (e.g. ``"tests.agents.extra_specialty:SPECIALTY"``). Plug-ins load
*lazily, by the registry of the process that looks one up*, from two places:

- the environment variable ``REDLINE_SPECIALTIES`` (comma-separated import paths), read on every
  lookup of a name the registry does not hold yet: for every process of a machine or a cluster
  (set it in the Ray job's or Serve app's ``runtime_env`` so workers and replicas see it);
- a run's config, ``evolve.plugins`` (a list of import paths): validating the config loads them,
  the evolve driver passes them to the Mother actor (``EvolutionSettings.plugins``), which loads
  them in its own process, and they are stored with the run, so a resume loads them again.

:func:`register` adds a ``Specialty`` object directly (in this process only: a Ray worker will
not see it unless it is also named by an import path). Names and prefixes are unique: registering
a second, different specialty under a taken name or prefix raises naming both; registering the
same object again is a no-op. The built-ins load on the first lookup, before any plug-in, in
the order DESIGN.md lists them.

The importing module must be importable in every process that looks the specialty up (on the
``PYTHONPATH``, or in the Ray job's ``working_dir`` / ``py_modules``).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterable, Iterator, Mapping

from agents.specialties.base import (
    TASKS,
    GridDatasets,
    LiveInput,
    Specialty,
    Task,
    model_genes,
    one_per_symbol,
    series_space,
)

__all__ = [
    "BUILTIN",
    "PLUGINS_ENV",
    "SPECIALTIES",
    "TASKS",
    "GridDatasets",
    "LiveInput",
    "Specialty",
    "Task",
    "get_specialty",
    "load_plugins",
    "model_genes",
    "one_per_symbol",
    "register",
    "series_space",
    "specialty_of_prefix",
    "unregister",
]

#: The seven built-in specialties, one module each under ``agents/specialties/``.
BUILTIN: tuple[str, ...] = (
    "technical_analyst",
    "volume_hunter",
    "market_scanner",
    "whale_watcher",
    "sentiment_scout",
    "rugpull_detector",
    "report_coordinator",
)
#: Comma-separated import paths of plug-in specialties, loaded by every process that looks one up.
PLUGINS_ENV = "REDLINE_SPECIALTIES"

_lock = threading.RLock()
_registry: dict[str, Specialty] = {}
_loaded: set[str] = set()  # import paths already loaded
_builtins_loaded = False


def _import(path: str) -> Specialty:
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(
            f"a specialty plug-in must be named 'package.module:ATTRIBUTE'; got {path!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"specialty plug-in {path!r}: cannot import {module_name}: {exc}") from exc
    value = getattr(module, attribute, None)
    if not isinstance(value, Specialty):
        raise ValueError(
            f"specialty plug-in {path!r}: {attribute} must be a Specialty; got "
            f"{type(value).__name__}"
        )
    return value


def _load_builtins() -> None:
    global _builtins_loaded
    with _lock:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        for name in BUILTIN:
            register(_import(f"agents.specialties.{name}:SPECIALTY"))


def _check_eats(specialty: Specialty) -> None:
    import dataclasses

    from agents.sources import DataSources  # here: agents.sources imports store, not needed before

    fields = [f.name for f in dataclasses.fields(DataSources)]
    for name in specialty.eats:
        if name not in fields:
            raise ValueError(
                f"specialty {specialty.name!r}: eats names {name!r}, which is not a DataSources "
                f"field; one of {', '.join(fields)}"
            )


def register(specialty: Specialty) -> Specialty:
    """Add ``specialty`` to this process's registry (see the module doc); returns it."""
    if not isinstance(specialty, Specialty):
        raise TypeError(f"register needs a Specialty; got {type(specialty).__name__}")
    with _lock:
        if not _builtins_loaded and specialty.name not in BUILTIN:
            _load_builtins()
        _check_eats(specialty)
        held = _registry.get(specialty.name)
        if held is not None:
            if held == specialty:
                return held
            raise ValueError(
                f"specialty {specialty.name!r} is already registered (a different object)"
            )
        for other in _registry.values():
            if other.prefix == specialty.prefix:
                raise ValueError(
                    f"specialty {specialty.name!r}: prefix {specialty.prefix!r} is taken by "
                    f"{other.name!r}"
                )
        _registry[specialty.name] = specialty
        return specialty


def unregister(name: str) -> None:
    """Remove a plug-in from this process's registry (tests); the built-ins stay."""
    if name in BUILTIN:
        raise ValueError(f"specialty {name!r} is built in and cannot be unregistered")
    with _lock:
        _registry.pop(name, None)
        _loaded.difference_update({p for p in _loaded if _import(p).name == name})


def load_plugins(paths: Iterable[str]) -> list[Specialty]:
    """Import and register the specialties named by ``paths`` (``"module:ATTRIBUTE"``), each once."""
    _load_builtins()
    out = []
    with _lock:
        for path in paths:
            specialty = _import(path)
            register(specialty)
            _loaded.add(path)
            out.append(specialty)
    return out


def _load_env() -> None:
    raw = os.environ.get(PLUGINS_ENV, "")
    paths = [p.strip() for p in raw.split(",") if p.strip()]
    fresh = [p for p in paths if p not in _loaded]
    if fresh:
        load_plugins(fresh)


def _ensure(name: str | None = None) -> None:
    _load_builtins()
    if name is None or name not in _registry:
        _load_env()


def get_specialty(name: str) -> Specialty:
    """The specialty called ``name``; an unknown name raises naming the known ones."""
    if isinstance(name, str):
        _ensure(name)
        held = _registry.get(name)
        if held is not None:
            return held
    else:
        _ensure()
    raise ValueError(f"specialty must be one of {', '.join(_registry)}; got {name!r}")


def specialty_of_prefix(prefix: str) -> Specialty | None:
    """The specialty whose agent ids start with ``prefix``, or None."""
    _ensure()
    for specialty in _registry.values():
        if specialty.prefix == prefix:
            return specialty
    return None


class _Registry(Mapping[str, Specialty]):
    """Every registered specialty by name: the seven in DESIGN.md's order, then plug-ins."""

    def __getitem__(self, name: str) -> Specialty:
        _ensure(name)
        return _registry[name]

    def __iter__(self) -> Iterator[str]:
        _ensure()
        return iter(list(_registry))

    def __len__(self) -> int:
        _ensure()
        return len(_registry)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        _ensure(name)
        return name in _registry

    def __repr__(self) -> str:
        return f"SPECIALTIES({', '.join(self)})"


#: Every specialty by name (a live view of the registry).
SPECIALTIES: Mapping[str, Specialty] = _Registry()
