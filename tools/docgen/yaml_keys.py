"""The keys of a nidiff config file with the value and the comment written beside each.

The config files are plain block mappings with inline lists and ``# comment`` after a value, which
a YAML loader drops. This reader keeps them: every key with its dotted path, its value as written
(``${image_shape.0}`` stays an interpolation) and its comment, continuation lines included (a
comment-only line indented deeper than the key before it). :func:`leaf_paths` gives the keys
OmegaConf sees, so a test can hold the two readings equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ConfigFile", "ConfigKey", "leaf_paths", "read_config"]

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?:[ \t]+(?P<rest>.*))?$")
_ITEM = re.compile(r"^(?P<indent> *)- (?P<rest>.*)$")


@dataclass
class ConfigKey:
    """One key of a config file."""

    path: str                # dotted path from the package root, e.g. "optim.grad_clip"
    value: str               # the value as written; "" for a mapping
    comment: str = ""        # the comment beside it and on its continuation lines
    mapping: bool = False    # a mapping of further keys


@dataclass
class ConfigFile:
    """A config file: its ``@package``, its opening comment, its defaults list and its keys."""

    path: Path
    package: str | None = None                           # "basis", "_global_", ... (None: the root)
    header: str = ""                                     # the opening comment, as one paragraph
    defaults: list[str] = field(default_factory=list)    # the defaults list, items as written
    keys: list[ConfigKey] = field(default_factory=list)


def _split_comment(text: str) -> tuple[str, str]:
    """``'value  # comment'`` -> ``('value', 'comment')``; a ``#`` inside quotes is no comment."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def read_config(path: str | Path) -> ConfigFile:
    """Read ``path`` (a nidiff config file) with its comments."""
    path = Path(path)
    out = ConfigFile(path)
    header: list[str] = []
    stack: list[tuple[int, str]] = []  # (indent, name) of the enclosing mappings
    last: tuple[int, ConfigKey] | None = None
    in_defaults = False
    for line in path.read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped:
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text.startswith("@package"):
                out.package = text.split()[1]
            elif last is None and not in_defaults:
                header.append(text)
            elif last is not None and indent > last[0] and last[1].comment:
                last[1].comment += " " + text
            continue
        item = _ITEM.match(line)
        if item:
            value, _ = _split_comment(item["rest"])
            if in_defaults:
                out.defaults.append(value)
            elif last is not None:
                last[1].value = (last[1].value + " - " + value).strip()
            continue
        match = _KEY.match(line)
        if not match:
            raise ValueError(f"{path}: cannot read the line {line!r}; keep config files to block "
                             f"mappings with inline lists")
        value, comment = _split_comment(match["rest"] or "")
        if indent == 0 and match["key"] == "defaults":
            in_defaults, last = True, None
            continue
        in_defaults = False
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = ".".join(name for _, name in stack)
        key = ConfigKey(f"{prefix}.{match['key']}" if prefix else match["key"], value, comment, mapping=not value)
        out.keys.append(key)
        last = (indent, key)
        if key.mapping:
            stack.append((indent, match["key"]))
    out.header = " ".join(header)
    return out


def leaf_paths(path: str | Path) -> set[str]:
    """The dotted paths of the keys holding values (and of empty mappings), as OmegaConf loads them."""
    from omegaconf import DictConfig, OmegaConf

    def walk(node: DictConfig, prefix: str) -> set[str]:
        paths: set[str] = set()
        for key in node.keys():
            name = f"{prefix}{key}"
            value = node._get_node(key)
            if isinstance(value, DictConfig) and len(value):
                paths |= walk(value, name + ".")
            else:
                paths.add(name)
        return paths

    cfg = OmegaConf.load(path)
    return {p for p in walk(cfg, "") if p != "defaults"}
