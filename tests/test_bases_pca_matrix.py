"""Data-driven and non-orthogonal bases: ``pca``, ``pca_separable`` and ``matrix``.

Recovery tests draw Gaussian data with a known covariance and compare the fitted eigenvectors and
variances with the truth, within tolerances derived from the sample size (see ``_assert_aligned``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import nidiff
from nidiff.bases.pca import rank_matched_eigenvalues

F64 = torch.float64


def _orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return q * torch.sign(torch.diagonal(r))  # [n, n], Haar-distributed


def _gaussian(n: int, q: torch.Tensor, var: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``n`` samples of ``N(0, Q diag(var) Q^T)``, ``[n, D]`` float64."""
    z = torch.randn(n, var.numel(), generator=g, dtype=F64)
    return (z * var.sqrt()) @ q.T


def _assert_aligned(v: torch.Tensor, q: torch.Tensor, var: torch.Tensor, n_eff: float) -> None:
    """Fitted eigenvectors ``v`` (columns) match the true ``q`` (columns, same decreasing order).

    First-order perturbation of a sample covariance from ``n_eff`` Gaussian samples: the component
    of fitted vector ``i`` along true vector ``j`` is about ``N(0, var_i var_j / n_eff) / (var_i -
    var_j)``. Off-diagonal entries of ``|V^T Q|`` must stay within 6 such standard deviations; the
    diagonal then lies within ``1 - sum_j tol_ij^2`` of 1 (unit vectors).
    """
    m = (v.T @ q).abs()  # [n, n], ~ identity
    gap = (var[:, None] - var[None, :]).abs().fill_diagonal_(1.0)
    tol = 6.0 * (var[:, None] * var[None, :] / n_eff).sqrt() / gap
    tol.fill_diagonal_(0.0)
    assert bool((m - torch.diag(torch.diagonal(m)) <= tol).all()), (m, tol)
    assert bool((torch.diagonal(m) >= 1.0 - (tol**2).sum(1) - 1e-12).all())


def _dense(basis: nidiff.Basis, dtype: torch.dtype = F64) -> torch.Tensor:
    """``P^-1`` as a ``[D, D]`` matrix (rows: coefficients), from the transform of unit images."""
    c, h, w = basis.shape
    eye = torch.eye(c * h * w, dtype=dtype).reshape(-1, c, h, w)
    return basis.to_coeffs(eye).reshape(c * h * w, -1).T


def _dct_spectrum(shape: tuple[int, int, int]) -> torch.Tensor:
    """DCT eigenvalues of all ``C*H*W`` coefficients, sorted ascending (independent reference)."""
    lam = nidiff.build_basis("dct", shape=shape).eigenvalues().expand(shape)
    return lam.flatten().sort().values


# ---- pca ---------------------------------------------------------------------------------------
SHAPE = (1, 4, 4)
N = 20_000


@pytest.fixture(scope="module")
def known():
    """Samples ``[N, 1, 4, 4]`` of ``N(0, Q diag(var) Q^T)`` with spread-out, distinct variances."""
    g = torch.Generator().manual_seed(0)
    d = math.prod(SHAPE)
    q = _orthogonal(d, g)
    var = 4.0 * 0.7 ** torch.arange(d, dtype=F64)  # neighbours 30% apart
    return _gaussian(N, q, var, g).reshape(N, *SHAPE), q, var


@pytest.fixture(scope="module")
def fitted(known):
    return nidiff.build_basis("pca", shape=SHAPE).fit(known[0])


def test_pca_recovers_known_covariance(known, fitted):
    _, q, var = known
    _assert_aligned(fitted.components, q, var, N)
    # a sample variance from N Gaussian samples has standard error var * sqrt(2 / N)
    torch.testing.assert_close(fitted.variances, var, atol=0.0, rtol=5.0 * math.sqrt(2.0 / N))
    assert bool((fitted.variances[:-1] >= fitted.variances[1:]).all())


def test_pca_fit_from_dataloader_matches_tensor(known, fitted):
    x = known[0].float()
    loader = DataLoader(TensorDataset(x, torch.zeros(N, dtype=torch.long)), batch_size=997)
    streamed = nidiff.build_basis("pca", shape=SHAPE).fit(loader)
    direct = nidiff.build_basis("pca", shape=SHAPE).fit(x)
    for name in ("mean", "components", "variances"):
        torch.testing.assert_close(getattr(streamed, name), getattr(direct, name), rtol=1e-9, atol=1e-11)


def test_pca_round_trip_and_orthonormal(fitted):
    x = torch.randn(5, *SHAPE)
    u = fitted.to_coeffs(x)
    assert u.shape == (5, 16) and fitted.coeff_shape == (16,) and fitted.orthogonal
    torch.testing.assert_close(fitted.from_coeffs(u), x, atol=1e-5, rtol=0)
    xd = x.double()
    torch.testing.assert_close(fitted.from_coeffs(fitted.to_coeffs(xd)), xd, atol=1e-12, rtol=0)
    m = _dense(fitted, torch.float32)
    torch.testing.assert_close(m @ m.T, torch.eye(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(fitted.to_coeffs(x.double()), x.double().reshape(5, 16) @ fitted.components)


def test_pca_eigenvalues_rank_matched_to_dct(fitted):
    lam = fitted.eigenvalues()
    assert lam.dtype == F64 and lam.shape == (16,)
    torch.testing.assert_close(lam, _dct_spectrum(SHAPE), atol=0, rtol=0)  # variances are decreasing
    var = torch.tensor([1.0, 5.0, 3.0, 5.0], dtype=F64)  # ties keep their order
    lam4 = rank_matched_eigenvalues(var, (1, 2, 2))
    s = (math.pi / 2) ** 2
    torch.testing.assert_close(lam4, torch.tensor([2 * s, 0.0, s, s], dtype=F64))


def test_pca_state_dict_round_trip(fitted, tmp_path):
    model = torch.nn.ModuleDict({"basis": fitted})
    assert {"basis.components", "basis.variances", "basis.mean", "basis.fitted"} == set(model.state_dict())
    torch.save(model.state_dict(), tmp_path / "pca.pt")
    fresh = torch.nn.ModuleDict({"basis": nidiff.build_basis("pca", shape=SHAPE)})
    fresh.load_state_dict(torch.load(tmp_path / "pca.pt", weights_only=True))
    x = torch.randn(3, *SHAPE)
    assert torch.equal(fresh["basis"].to_coeffs(x), fitted.to_coeffs(x))
    assert torch.equal(fresh["basis"].eigenvalues(), fitted.eigenvalues())


def test_pca_unfitted_raises():
    basis = nidiff.build_basis("pca", shape=SHAPE)
    with pytest.raises(RuntimeError, match=r"not fitted: call \.fit\(images\)"):
        basis.to_coeffs(torch.randn(2, *SHAPE))
    with pytest.raises(RuntimeError, match=r"not fitted: call \.fit\(images\)"):
        basis.from_coeffs(torch.randn(2, 16))
    with pytest.raises(RuntimeError, match=r"not fitted: call \.fit\(images\)"):
        basis.eigenvalues()


def test_pca_fit_rejects_bad_data():
    basis = nidiff.build_basis("pca", shape=SHAPE)
    with pytest.raises(ValueError, match="at least 2"):
        basis.fit(torch.randn(1, *SHAPE))
    with pytest.raises(ValueError, match=r"\[n, 1, 4, 4\]"):
        basis.fit(torch.randn(8, 1, 4, 5))
    with pytest.raises(TypeError, match="floating point"):
        basis.fit(torch.zeros(8, *SHAPE, dtype=torch.uint8))
    with pytest.raises(TypeError, match="iterable"):
        basis.fit(3)
    with pytest.raises(ValueError, match="zero variance"):
        basis.fit(torch.ones(8, *SHAPE))


def test_pca_memory_guard_raises_before_allocating(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the memory guard must raise before any tensor is allocated")

    for name in ("zeros", "empty", "ones", "eye"):
        monkeypatch.setattr(torch, name, refuse)
    with pytest.raises(ValueError, match=r"D = C\*H\*W = 49152.*19327352832 bytes.*pca_separable"):
        nidiff.build_basis("pca", shape=(3, 128, 128))
    with pytest.raises(ValueError, match="max_bytes = 100"):
        nidiff.build_basis("pca", shape=SHAPE, max_bytes=100)


def test_pca_whiten(known):
    x = known[0][:4000]
    basis = nidiff.build_basis("pca", shape=SHAPE, whiten=True).fit(x)
    assert basis.orthogonal is False
    u = basis.to_coeffs(x)  # [n, D], float64
    cov = torch.cov(u.T)
    # exactly diag(var / (var + eps)) on the fitted data; eps = 1e-6 * max var, var ratio < 250
    torch.testing.assert_close(cov, torch.eye(16, dtype=F64), atol=1e-3, rtol=0)
    xs = torch.randn(5, *SHAPE)
    torch.testing.assert_close(basis.from_coeffs(basis.to_coeffs(xs)), xs, atol=1e-5, rtol=0)
    m = _dense(basis)
    assert not torch.allclose(m @ m.T, torch.eye(16, dtype=F64), atol=1e-3)
    torch.testing.assert_close(basis.eigenvalues(), _dct_spectrum(SHAPE), atol=0, rtol=0)


# ---- pca_separable -----------------------------------------------------------------------------
SEP_SHAPE = (3, 4, 5)


def test_separable_recovers_kronecker_structure():
    g = torch.Generator().manual_seed(1)
    n = 4000
    qs = [_orthogonal(k, g) for k in SEP_SHAPE]
    vs = [2.0 * 0.45 ** torch.arange(k, dtype=F64) for k in SEP_SHAPE]
    a = [q * v.sqrt() for q, v in zip(qs, vs)]  # Sigma_axis = A A^T
    z = torch.randn(n, *SEP_SHAPE, generator=g, dtype=F64)
    x = torch.einsum("ca,hi,wj,naij->nchw", *a, z) + 0.5  # a non-zero mean too
    basis = nidiff.build_basis("pca_separable", shape=SEP_SHAPE).fit(x)
    rel = 0.0
    for k, (axis, q, v) in enumerate(zip("chw", qs, vs)):
        # Each marginal pools n * (product of the other sizes) correlated vectors: a weighted
        # Wishart whose effective sample size is n * prod_other trace(S)^2 / trace(S^2).
        n_eff = n * math.prod(float(o.sum() ** 2 / (o**2).sum()) for j, o in enumerate(vs) if j != k)
        _assert_aligned(getattr(basis, f"components_{axis}"), q, v, n_eff)
        rel += 6.0 * math.sqrt(2.0 / n_eff)  # 6 standard errors of this factor's variances
    truth = vs[0][:, None, None] * vs[1][None, :, None] * vs[2]
    torch.testing.assert_close(basis.variances, truth, atol=0, rtol=rel)
    torch.testing.assert_close(basis.variances.sum(), torch.var(x, dim=0).sum())
    # eigenvalues: the DCT spectrum assigned in order of decreasing variance
    lam = basis.eigenvalues()
    assert lam.shape == SEP_SHAPE and lam.dtype == F64
    order = torch.argsort(basis.variances.flatten(), descending=True, stable=True)
    torch.testing.assert_close(lam.flatten()[order], _dct_spectrum(SEP_SHAPE), atol=0, rtol=0)


def test_separable_round_trip_orthonormal_state_dict(tmp_path):
    g = torch.Generator().manual_seed(2)
    basis = nidiff.build_basis("pca_separable", shape=SEP_SHAPE)
    with pytest.raises(RuntimeError, match=r"not fitted: call \.fit\(images\)"):
        basis.to_coeffs(torch.randn(2, *SEP_SHAPE))
    basis.fit(torch.randn(64, *SEP_SHAPE, generator=g) * torch.linspace(0.5, 2.0, 5))
    x = torch.randn(4, *SEP_SHAPE)
    u = basis.to_coeffs(x)
    assert u.shape == (4, *SEP_SHAPE) and basis.orthogonal
    torch.testing.assert_close(basis.from_coeffs(u), x, atol=1e-5, rtol=0)
    m = _dense(basis)
    torch.testing.assert_close(m @ m.T, torch.eye(60, dtype=F64), atol=1e-12, rtol=0)
    kron = torch.kron(torch.kron(basis.components_c, basis.components_h), basis.components_w)
    torch.testing.assert_close(m, kron.T, atol=1e-12, rtol=0)  # u = (V_C ⊗ V_H ⊗ V_W)^T x
    torch.save(basis.state_dict(), tmp_path / "sep.pt")
    fresh = nidiff.build_basis("pca_separable", shape=SEP_SHAPE)
    fresh.load_state_dict(torch.load(tmp_path / "sep.pt", weights_only=True))
    assert torch.equal(fresh.to_coeffs(x), u)


def test_separable_large_image_stays_small():
    basis = nidiff.build_basis("pca_separable", shape=(3, 128, 128))
    basis.fit(torch.randn(5, 3, 128, 128, generator=torch.Generator().manual_seed(3)))
    size = sum(b.numel() * b.element_size() for b in basis.buffers())
    assert size < 200 * 2**20, size
    x = torch.randn(2, 3, 128, 128)
    torch.testing.assert_close(basis.from_coeffs(basis.to_coeffs(x)), x, atol=1e-5, rtol=0)
    assert basis.eigenvalues().shape == (3, 128, 128)


# ---- matrix ------------------------------------------------------------------------------------
M_SHAPE = (2, 3, 5)
D = 30


def _well_conditioned(g: torch.Generator) -> torch.Tensor:
    """``Q1 diag(0.5..2) Q2^T``: condition number 4, far from orthogonal."""
    return _orthogonal(D, g) @ torch.diag(torch.linspace(0.5, 2.0, D, dtype=F64)) @ _orthogonal(D, g).T


def test_matrix_round_trip_non_orthogonal():
    p = _well_conditioned(torch.Generator().manual_seed(4))
    basis = nidiff.build_basis("matrix", shape=M_SHAPE, P=p)
    assert basis.orthogonal is False and basis.coeff_shape == (D,)
    x = torch.randn(6, *M_SHAPE, dtype=F64)
    u = basis.to_coeffs(x)
    torch.testing.assert_close(u, torch.linalg.solve(p, x.reshape(6, D).T).T, atol=1e-12, rtol=0)
    torch.testing.assert_close(basis.from_coeffs(u), x, atol=1e-12, rtol=0)
    xf = x.float()
    uf = basis.to_coeffs(xf)
    assert uf.dtype == torch.float32
    torch.testing.assert_close(basis.from_coeffs(uf), xf, atol=1e-5, rtol=0)
    assert torch.equal(basis.eigenvalues(), torch.zeros(D, dtype=F64))
    lists = nidiff.build_basis("matrix", shape=M_SHAPE, P=p.tolist())
    assert torch.equal(lists.to_coeffs(x), u)


def test_matrix_orthogonal_flag():
    g = torch.Generator().manual_seed(5)
    q = _orthogonal(D, g)
    assert nidiff.build_basis("matrix", shape=M_SHAPE, P=q).orthogonal is True
    assert nidiff.build_basis("matrix", shape=M_SHAPE, P=1.001 * q).orthogonal is False


def test_matrix_rejects_bad_p():
    p = torch.eye(D, dtype=F64)
    p[:, 3] = 0.0
    with pytest.raises(ValueError, match="singular or ill-conditioned"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=p)
    with pytest.raises(ValueError, match="singular or ill-conditioned"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=torch.diag(torch.logspace(0, -10, D, dtype=F64)))
    with pytest.raises(ValueError, match=r"D = C\*H\*W = 30"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=torch.eye(D - 1))
    with pytest.raises(ValueError, match=r"\[D, D\]"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=torch.ones(D, D + 1))
    with pytest.raises(ValueError, match="non-finite"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=torch.full((D, D), math.nan))
    with pytest.raises(TypeError, match="nested list"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P="identity")


def test_matrix_eigenvalue_validation():
    p = torch.eye(D)
    lam = torch.linspace(0.0, 3.0, D, dtype=F64)
    got = nidiff.build_basis("matrix", shape=M_SHAPE, P=p, eigenvalues=lam.tolist()).eigenvalues()
    assert got.dtype == F64 and torch.equal(got, lam)
    for bad in (-lam, torch.full((D,), math.nan), torch.full((D,), math.inf)):
        with pytest.raises(ValueError, match="finite and >= 0"):
            nidiff.build_basis("matrix", shape=M_SHAPE, P=p, eigenvalues=bad)
    with pytest.raises(ValueError, match=r"shape \[D\] = \[30\]"):
        nidiff.build_basis("matrix", shape=M_SHAPE, P=p, eigenvalues=torch.zeros(D - 1))
