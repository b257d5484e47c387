"""Shared fixtures: a factory that builds any registered basis ready for use, and one thread."""

from __future__ import annotations

import pytest
import torch

import nidiff


def _fit(name: str, shape: tuple[int, int, int]) -> nidiff.Basis:
    basis = nidiff.build_basis(name, shape=shape)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(256, *shape, generator=g) * torch.linspace(0.2, 2.0, shape[-1])
    return basis.fit(data)


def _matrix(shape: tuple[int, int, int]) -> nidiff.Basis:
    d = shape[0] * shape[1] * shape[2]
    g = torch.Generator().manual_seed(0)
    p = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    lam = torch.rand(d, generator=g, dtype=torch.float64)
    return nidiff.build_basis("matrix", shape=shape, P=p, eigenvalues=lam)


# bases that need more than a shape to be usable; a basis that learns from data (it has ``fit``)
# is fitted on anisotropic Gaussian images; every other registered basis is built as-is
SPECIAL = {"matrix": _matrix}


def make_basis(name: str, shape: tuple[int, int, int]) -> nidiff.Basis:
    if name in SPECIAL:
        return SPECIAL[name](shape)
    if hasattr(nidiff.registries.BASES.get(name), "fit"):
        return _fit(name, shape)
    return nidiff.build_basis(name, shape=shape)


@pytest.fixture
def basis_factory():
    return make_basis


# Tests work on tiny tensors: one thread avoids oversubscribing the two cores of CI machines.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: intra-op threads only add overhead (and contention on a shared machine). Use
    with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
