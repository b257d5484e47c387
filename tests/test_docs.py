"""Code in docs/ runs as it stands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from nidiff.registries import BASES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def test_add_a_basis_example_runs():
    (block,) = [b for b in python_blocks("engine.md") if "register_basis" in b]
    namespace: dict = {}
    try:
        exec(compile(block, "docs/engine.md", "exec"), namespace)
        z_t, eps = namespace["z_t"], namespace["eps"]
        assert z_t.shape == (8, 3, 32, 32) and bool(torch.isfinite(z_t).all())
        basis = namespace["diffusion"].basis
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(basis.from_coeffs(basis.to_coeffs(x)), x, atol=1e-5, rtol=1e-5)
        # one schedule per column frequency: alpha varies along W only, so rows alone are blurred
        alpha, _ = namespace["diffusion"].alpha_sigma(torch.tensor([0.5]))
        assert alpha.shape == (1, 1, 1, 32) and bool((alpha[..., 1:] < alpha[..., :1]).all())
    finally:
        BASES._entries.pop("row_dct", None)


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_docs_name_no_unknown_basis_or_schedule(page):
    """Every `build_basis("x")` / `build_schedule("x")` in the docs names a registered entry."""
    import nidiff

    text = (DOCS / page).read_text()
    for name in re.findall(r'build_basis\("([a-z_0-9]+)"', text):
        assert name in nidiff.list_bases() or name == "row_dct", (page, name)
    for name in re.findall(r'build_schedule\("([a-z_0-9]+)"', text):
        assert name in nidiff.list_schedules(), (page, name)
