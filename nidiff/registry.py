"""A small typed registry: register / get / build / names, extended by entry points.

Bases and schedules are chosen by explicit name (``build_basis("dct", ...)``). Third-party
packages add entries through the entry-point groups ``nidiff.bases`` and ``nidiff.schedules``;
each entry point names a class (or factory), registered under the entry point's name:

    [project.entry-points."nidiff.bases"]
    my_basis = "my_package.bases:MyBasis"
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from nidiff.params import check_params

__all__ = ["PLUGINS_ENV", "Registry", "UnknownNameError", "DuplicateNameError", "import_plugin_modules"]

# modules of the user's own components, imported before any lookup: NIDIFF_PLUGINS=my_schedules,lab.bases
PLUGINS_ENV = "NIDIFF_PLUGINS"

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that no entry of the registry carries."""


class DuplicateNameError(ValueError):
    """A second registration under a name already taken."""


class Registry(Generic[T]):
    """Maps explicit names to classes or factories of one kind (``"basis"``, ``"schedule"``)."""

    def __init__(self, kind: str, group: str, plural: str | None = None, builtins: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or kind + "s"
        self.group = group  # entry-point group searched on first lookup
        self.builtins = builtins  # the package whose import registers the built-in entries
        self._entries: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Class decorator: ``@register_basis("dct")``. A duplicate name raises."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(name, factory)
            return factory

        return decorator

    def add(self, name: str, factory: Callable[..., T]) -> None:
        if name in self._entries and self._entries[name] is not factory:
            raise DuplicateNameError(
                f"a {self.kind} named {name!r} is already registered "
                f"({_qualname(self._entries[name])}); choose another name"
            )
        self._entries[name] = factory

    def get(self, name: str) -> Callable[..., T]:
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[name]

    def build(self, name: str, /, **kwargs: Any) -> T:
        """``factory(**kwargs)`` after checking ``kwargs`` against its signature (:mod:`nidiff.params`)."""
        factory = self.get(name)
        return factory(**check_params(factory, kwargs, f"{self.kind} {name!r}"))

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Known {self.plural}: {', '.join(known)}."

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self.builtins:
            importlib.import_module(self.builtins)
        import_plugin_modules()
        for ep in entry_points(group=self.group):
            if ep.name not in self._entries:
                self.add(ep.name, ep.load())


def import_plugin_modules() -> None:
    """Import the modules named in ``$NIDIFF_PLUGINS`` (comma-separated), whose import registers
    the user's components. Only the user's environment names them, never a saved run."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"{PLUGINS_ENV} names {name!r}, which cannot be imported: {err}") from err


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
