"""The registries: explicit names, duplicates, unknown names, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

import nidiff
from nidiff.registry import DuplicateNameError, Registry, UnknownNameError


def test_builtin_names():
    assert {"identity", "dct", "fourier", "haar", "pca", "pca_separable", "matrix"} <= set(nidiff.list_bases())
    assert {"cosine", "linear", "blur", "blurring", "ihdm", "product"} <= set(nidiff.list_schedules())


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(UnknownNameError) as e:
        nidiff.build_basis("dtc", shape=(3, 8, 8))
    msg = str(e.value)
    assert "Did you mean 'dct'?" in msg and "identity" in msg and "haar" in msg
    with pytest.raises(ValueError, match="Known schedules: .*blurring"):
        nidiff.build_schedule("bluring")


def test_duplicate_name_raises():
    reg: Registry[object] = Registry("thing", group="nidiff.tests.none")
    reg.register("a")(type("A", (), {}))
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.register("a")(type("B", (), {}))
    with pytest.raises(TypeError):
        reg.register("")


def test_duplicate_builtin_raises():
    with pytest.raises(DuplicateNameError):
        nidiff.register_basis("dct")(type("Other", (nidiff.Basis,), {}))


def test_entry_point_plugin(tmp_path, monkeypatch):
    """A third-party package's entry point appears in the registry, by the real metadata mechanism."""
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent(
            """
            from nidiff.bases.identity import IdentityBasis

            class PluginBasis(IdentityBasis):
                pass
            """
        )
    )
    dist = tmp_path / "my_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nidiff.test_bases]\nplugin_basis = my_plugin:PluginBasis\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("basis", group="nidiff.test_bases")
    assert "plugin_basis" in reg.names()
    basis = reg.build("plugin_basis", shape=(1, 2, 2))
    assert type(basis).__name__ == "PluginBasis"
    sys.modules.pop("my_plugin", None)
