"""Parameters of a registered component, checked against its signature before it is built.

A component (basis, schedule, network, sampler) is built from a registry name and a mapping of
parameters, whether the mapping comes from Python, the command line or a saved run. Before the
factory runs, every parameter is checked here: its name must be one the factory takes, and its
value must fit the annotation (``int``, ``float``, ``bool``, ``str``, ``None``, lists or tuples of
those, ``Literal``, unions). A value of another kind from a file (a mapping where a number is
expected, say) is refused with a message naming the component, the parameter and what it takes.
Nothing here imports or calls anything a parameter names: parameters are data.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ParameterError", "check_params", "signature_defaults"]


class ParameterError(TypeError):
    """A parameter the component does not take, or a value of the wrong kind."""


def _signature(factory: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(factory)


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation naming something only imported for type checkers
        return {}


def signature_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    """``{parameter: default}`` of ``factory``; a parameter without a default maps to ``"???"``
    (OmegaConf's missing value), so that a config generated from it must be completed."""
    out = {}
    for name, p in _signature(factory).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = "???" if p.default is p.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        if default is None or isinstance(default, (bool, int, float, str, list)):
            out[name] = default
    return out


def check_params(factory: Callable[..., Any], params: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Check ``params`` against ``factory``'s signature; return them as a plain dict.

    Raises :class:`ParameterError` naming ``what`` (e.g. ``"schedule 'cosine'"``) for an unknown
    parameter, a missing required one, or a value that does not fit its annotation.
    """
    if not isinstance(params, Mapping):
        raise ParameterError(f"the parameters of {what} must be a mapping, got {type(params).__name__}")
    sig = _signature(factory)
    accepted = {n: p for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    hints = _hints(factory)
    out: dict[str, Any] = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise ParameterError(f"{what}: parameter names must be strings, got {name!r}")
        if name not in accepted and not takes_any:
            known = ", ".join(accepted) or "none"
            raise ParameterError(f"{what} takes no parameter {name!r}; it takes: {known}")
        hint = hints.get(name)
        if hint is not None and not _fits(value, hint):
            raise ParameterError(
                f"{what}: {name}={value!r} is not {_describe(hint)} (got {type(value).__name__})"
            )
        out[name] = value
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in out
               and p.kind != p.POSITIONAL_ONLY]
    if missing:
        raise ParameterError(f"{what} needs {', '.join(missing)}")
    return out


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is an instance of the annotation ``hint`` (the common cases; others pass)."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence, typing.Sequence) or hint in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return all(_fits(v, args[0]) for v in value)
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict,):
        return isinstance(value, Mapping)
    if inspect.isclass(hint):
        return isinstance(value, hint)
    return True  # an annotation this checker does not read: the factory checks it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if hint is type(None):
        return "null"
    if origin in (list, tuple, Sequence, typing.Sequence):
        return f"a list of {_describe(args[0])}" if args else "a list"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
