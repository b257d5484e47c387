"""The Gaussian diffusion engine: every coefficient of ``u = P^-1 x`` diffuses on its own schedule.

| paper (section 3-4)                                    | code                              |
| ------------------------------------------------------ | --------------------------------- |
| ``u_t = alpha_t u_x + sigma_t u_eps`` (eq. 20-21)      | ``diffuse``                       |
| ``alpha_{t|s}``, ``sigma^2_{t|s}`` (eq. 16)            | ``transition``                    |
| ``mu_{t->s}``, ``sigma^2_{t->s}`` (eq. 18-19)          | ``posterior``                     |
| ``u_x_hat`` from ``u_eps_hat`` (eq. 22, 24)            | ``predict``                       |
| ``|| eps - eps_hat ||^2`` (eq. 25, algorithm 2)        | ``loss``                          |
| ``z_1 ~ N(0, sigma_1^2)`` per coefficient              | ``prior_sample``                  |
| ``lambda_t = log(alpha_t^2 / sigma_t^2)``              | ``logsnr``                        |

Closed forms are evaluated in float64 through the log-SNR, in numerically stable forms:
``sigma^2_{t|s} = -sigma_t^2 expm1(lambda_t - lambda_s)``, and the posterior (eq. 19) as
``sigma^2_{t->s} = -sigma_s^2 expm1(lambda_t - lambda_s)``,
``mu_{t->s} = alpha_{t|s} sigma_s^2 / sigma_t^2 u_t - alpha_s expm1(lambda_t - lambda_s) u_x``.
They need none of the paper's ``delta = 1e-8`` clipping and stay finite where ``sigma^2_{t|s}``
underflows (``s -> t``). Results are cast to float32 (float64 for float64 inputs).

Noise. The network sees pixels and predicts the pixel-space image of the coefficient noise,
``eps = P u_eps`` with ``u_eps ~ N(0, I)``. For an orthogonal basis this is ordinary white noise;
for a non-orthogonal one (eq. 30) it is correlated, with covariance ``P P^T``, and it is drawn
in coefficient space and mapped, never drawn in pixel space.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nidiff.bases.base import Basis
from nidiff.parametrization import Parametrization, build_parametrization
from nidiff.noise import Generators, randn
from nidiff.schedules.base import Schedule

__all__ = ["GaussianDiffusion", "check_monotone_snr"]


class GaussianDiffusion(nn.Module):
    """Gaussian diffusion with a per-coefficient schedule in a basis (section 4.2).

    Args:
        basis: the basis ``u = P^-1 x`` (its eigenvalues feed per-coefficient schedules).
        schedule: gives ``log alpha_t``, ``log sigma_t`` per coefficient.
        parametrization: what the network predicts, ``"eps"`` (the paper's), ``"x"``, ``"v"``, or
            ``"precond"`` (``nidiff.preconditioning``; its data statistics must then be fitted or
            loaded); or a built :class:`~nidiff.parametrization.Parametrization`.
        validate_args: check shapes and ranges of ``t`` (costs a host sync on a GPU).
    """

    def __init__(
        self,
        basis: Basis,
        schedule: Schedule,
        parametrization: str | Parametrization = "eps",
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(basis, Basis):
            raise TypeError(f"basis must be a nidiff Basis, got {type(basis).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a nidiff Schedule, got {type(schedule).__name__}")
        self.basis = basis
        self.schedule = schedule
        self.parametrization = _parametrization(parametrization, basis)
        self.validate_args = validate_args
        # eigenvalues as float64, broadcastable to the coefficient shape; schedules are evaluated
        # once per distinct eigenvalue (a DCT has about half as many as coefficients, Haar 3L+1)
        lam = basis.eigenvalues().to(torch.float64)
        lam = lam.reshape(_broadcast_shape(lam, basis.coeff_shape))
        # eigenvalues equal up to float rounding (f_i^2 + f_j^2 = f_k^2 + f_l^2) share one entry
        unique, index = torch.unique(lam.reshape(-1).round(decimals=12), return_inverse=True)
        self.lam_shape = tuple(lam.shape)
        self.register_buffer("lam", lam, persistent=False)
        self.register_buffer("lam_unique", unique, persistent=False)  # [U]
        self.register_buffer("lam_index", index, persistent=False)  # [numel(lam)] -> [U]
        check_monotone_snr(schedule, unique)

    # ---- schedules --------------------------------------------------------------------------
    @property
    def coeff_ndim(self) -> int:
        return len(self.basis.coeff_shape)

    def log_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``log alpha_t``, ``log sigma_t`` in float64, broadcastable to ``[B, *coeff_shape]``."""
        log_alpha, log_sigma = self._unique_log_alpha_sigma(t)
        return self._expand(log_alpha), self._expand(log_sigma)

    def alpha_sigma(self, t: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """Per-coefficient ``alpha_t``, ``sigma_t`` (eq. 20), broadcastable to ``[B, *coeff_shape]``."""
        alpha, sigma = self.schedule.alpha_sigma(self._times(t).reshape(-1, 1), self.lam_unique)
        return self._expand(alpha.to(dtype)), self._expand(sigma.to(dtype))

    def logsnr(self, t: Tensor) -> Tensor:
        """``lambda_t = log(alpha_t^2 / sigma_t^2)`` (float64), broadcastable to ``[B, *coeff_shape]``."""
        log_alpha, log_sigma = self._unique_log_alpha_sigma(t)
        return self._expand(2.0 * (log_alpha - log_sigma))

    def log_alpha_sigma_dt(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``d log alpha_t / dt``, ``d log sigma_t / dt`` (float64), broadcastable to ``[B, *coeff_shape]``.

        Exact, by autograd through the schedule in float64: the drift of the probability-flow ODE
        and the weight ``d lambda_t / dt = 2 (d log alpha - d log sigma)`` of the continuous-time
        likelihood bound. Every (time, eigenvalue) pair gets its own copy of ``t``, so one backward
        pass per output gives all the elementwise derivatives.
        """
        t64 = self._times(t).reshape(-1, 1)
        with torch.enable_grad():
            tt = t64.expand(-1, self.lam_unique.numel()).clone().requires_grad_(True)  # [B, U]
            grads = []
            for v in self.schedule.log_alpha_sigma(tt, self.lam_unique):
                g = torch.autograd.grad(v.sum(), tt, retain_graph=True, allow_unused=True)[0] if v.requires_grad else None
                grads.append(torch.zeros_like(tt) if g is None else g)  # a constant: no graph to t
        return self._expand(grads[0]), self._expand(grads[1])

    def transition(self, t: Tensor, s: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """``alpha_{t|s} = alpha_t / alpha_s`` and ``sigma^2_{t|s}`` of ``q(u_t | u_s)`` (eq. 16), ``s <= t``."""
        (la_t, ls_t), (la_s, ls_s) = self._pair(t, s)
        alpha_ts = (la_t - la_s).exp()
        sigma2_ts = -(2.0 * ls_t).exp() * torch.expm1(_logsnr(la_t, ls_t) - _logsnr(la_s, ls_s))
        return self._expand(alpha_ts.to(dtype)), self._expand(sigma2_ts.clamp_min(0.0).to(dtype))

    def posterior_coefficients(
        self, t: Tensor, s: Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``q(u_s | u_t, u_x) = N(c_t u_t + c_x u_x, var)`` (eq. 18-19): returns ``c_t, c_x, var``."""
        c_t, c_x, _, var = self.reverse_coefficients(t, s, dtype)
        return c_t, c_x, var

    def posterior_eps_coefficients(
        self, t: Tensor, s: Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Eq. 24: ``mu = c_t u_t + c_e (u_t - sigma_t u_eps)`` with ``c_e = c_x / alpha_t``, and ``var``."""
        c_t, _, c_e, var = self.reverse_coefficients(t, s, dtype)
        return c_t, c_e, var

    def reverse_coefficients(
        self, t: Tensor, s: Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``c_t, c_x, c_e, var`` of the step ``t -> s``: the mean is ``c_t u_t + c_x u_x`` (eq. 19)
        or, equally, ``c_t u_t + c_e (u_t - sigma_t u_eps)`` (eq. 24).

        ``c_e = (alpha_s / alpha_t) (-expm1(lambda_t - lambda_s))`` is formed in the log domain, so
        it stays finite where ``alpha_t`` itself underflows (heat dissipation at high frequencies).
        """
        (la_t, ls_t), (la_s, ls_s) = self._pair(t, s)
        d = torch.expm1(_logsnr(la_t, ls_t) - _logsnr(la_s, ls_s))  # in [-1, 0]
        c_t = (la_t - la_s + 2.0 * (ls_s - ls_t)).exp()  # alpha_{t|s} sigma_s^2 / sigma_t^2
        c_x = -la_s.exp() * d                             # alpha_s sigma^2_{t|s} / sigma_t^2
        c_e = -(la_s - la_t).exp() * d                    # c_x / alpha_t
        var = (-(2.0 * ls_s).exp() * d).clamp_min(0.0)   # sigma^2_{t->s}
        return tuple(self._expand(v.to(dtype)) for v in (c_t, c_x, c_e, var))

    # ---- forward process --------------------------------------------------------------------
    def sample_noise(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``eps = P u_eps``, ``u_eps ~ N(0, I)``: white for an orthogonal basis, correlated otherwise."""
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if self.basis.orthogonal:
            return torch.randn(x.shape, generator=generator, device=x.device, dtype=dtype)
        u = torch.randn((x.shape[0], *self.basis.coeff_shape), generator=generator, device=x.device, dtype=dtype)
        return self.basis.from_coeffs(u)

    def diffuse(
        self, x: Tensor, t: Tensor, eps: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Sample ``z_t ~ q(z_t | x)`` (eq. 21): ``z_t = P(alpha_t u_x) + sigma_t eps`` in pixel space.

        Args:
            x: clean images ``[B, C, H, W]``.
            t: times ``[B]`` in [0, 1] (or a scalar, broadcast over the batch).
            eps: pixel-space noise ``P u_eps`` ``[B, C, H, W]``; drawn when ``None``.
        Returns:
            ``(z_t, eps)``, both ``[B, C, H, W]`` (float32, or float64 for float64 ``x``).
        """
        self._check_images(x, "x")
        t = self._batch_times(t, x.shape[0], x.device)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        if eps is None:
            eps = self.sample_noise(x, generator)
        else:
            self._check_images(eps, "eps", like=x)
            eps = eps.to(dtype)
        alpha, sigma = self.alpha_sigma(t, dtype)
        if _is_scalar(sigma):
            signal = _pixel(alpha) * x.to(dtype) if _is_scalar(alpha) else self._scale(alpha, x)
            return signal + _pixel(sigma) * eps, eps
        u_t = alpha * self.basis.to_coeffs(x) + sigma * self.basis.to_coeffs(eps)
        return self.basis.from_coeffs(u_t), eps

    def posterior(self, z_t: Tensor, x: Tensor, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``[B, *coeff_shape]`` and variance of ``q(u_s | u_t, u_x)`` in coefficient space (eq. 19)."""
        self._check_images(z_t, "z_t")
        self._check_images(x, "x", like=z_t)
        t = self._batch_times(t, z_t.shape[0], z_t.device)
        s = self._batch_times(s, z_t.shape[0], z_t.device)
        dtype = torch.float64 if z_t.dtype == torch.float64 else torch.float32
        c_t, c_x, var = self.posterior_coefficients(t, s, dtype)
        return c_t * self.basis.to_coeffs(z_t) + c_x * self.basis.to_coeffs(x), var

    # ---- reverse process --------------------------------------------------------------------
    def predict(self, z_t: Tensor, t: Tensor, output: Tensor) -> tuple[Tensor, Tensor]:
        """Network output (pixel space) to ``(x_hat, eps_hat)`` in pixel space (eq. 22)."""
        u_t = self.basis.to_coeffs(z_t)
        u_out = self.basis.to_coeffs(output)
        alpha, sigma = self.alpha_sigma(self._batch_times(t, z_t.shape[0], z_t.device), u_t.dtype)
        p = self.parametrization
        return (
            self.basis.from_coeffs(p.x(u_t, u_out, alpha, sigma)),
            self.basis.from_coeffs(p.eps(u_t, u_out, alpha, sigma)),
        )

    def loss(
        self,
        model: nn.Module,
        x: Tensor,
        t: Tensor | None = None,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-sample training loss ``[B]``: eq. 25, the mean squared error of the prediction.

        ``t ~ U(0, 1)`` when not given (algorithm 2). With the ``eps`` parametrization the target
        is the pixel noise ``eps``; with ``x`` the image; with ``v`` the pixel image of ``v``.
        """
        self._check_images(x, "x")
        if t is None:
            t = torch.rand(x.shape[0], device=x.device, generator=generator)
        z_t, eps = self.diffuse(x, t, eps=eps, generator=generator)
        output = model(z_t, t)
        target = self.target(x, eps, t)
        return (output.float() - target).pow(2).flatten(1).mean(1)

    def target(self, x: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The network's regression target in pixel space for the chosen parametrization."""
        name = self.parametrization.name
        if name in ("eps", "x"):  # no transform needed: the target is a pixel-space input
            return (eps if name == "eps" else x).to(eps.dtype)
        u_x, u_eps = self.basis.to_coeffs(x), self.basis.to_coeffs(eps)
        alpha, sigma = self.alpha_sigma(self._batch_times(t, x.shape[0], x.device), u_x.dtype)
        return self.basis.from_coeffs(self.parametrization.target(u_x, u_eps, alpha, sigma))

    def prior_sample(
        self,
        n: int,
        generator: Generators = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``z_1 = P u_1`` with ``u_1 ~ N(0, sigma_1^2)`` per coefficient: ``[n, C, H, W]``.

        ``generator`` may be a list of ``n`` generators, one per sample (see ``nidiff.noise``).
        """
        device = self.lam.device if device is None else device
        u = randn((n, *self.basis.coeff_shape), generator, device=device, dtype=dtype)
        _, sigma = self.alpha_sigma(torch.ones(n, device=device), dtype)
        return self.basis.from_coeffs(sigma * u)

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        n: int,
        steps: int = 1000,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        **kwargs,
    ) -> Tensor:
        """Draw ``n`` images with the ancestral sampler (algorithm 1) on a uniform grid of ``steps``."""
        from nidiff.sampling import ancestral, uniform_grid

        z = self.prior_sample(n, generator=generator, device=device)
        return ancestral(self, model, z, uniform_grid(steps, device=z.device), generator=generator, **kwargs)

    # ---- helpers ----------------------------------------------------------------------------
    def _scale(self, alpha: Tensor, x: Tensor) -> Tensor:
        return self.basis.from_coeffs(alpha * self.basis.to_coeffs(x))

    def _pair(self, t: Tensor, s: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        t, s = self._times(t), self._times(s)
        if self.validate_args and bool((s > t).any()):
            raise ValueError("transitions go from t to an earlier time s: need s <= t elementwise")
        return self._unique_log_alpha_sigma(t), self._unique_log_alpha_sigma(s)

    def _unique_log_alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The schedule at each distinct eigenvalue: ``[B, U]`` or ``[B, 1]`` (float64)."""
        t64 = self._times(t).reshape(-1, 1)
        return self.schedule.log_alpha_sigma(t64, self.lam_unique)

    def _expand(self, v: Tensor) -> Tensor:
        """``[B, U]`` (or ``[B, 1]``) to ``[B, *lam_shape]``, broadcastable to the coefficients."""
        if v.shape[-1] == 1:
            return v.reshape(-1, *([1] * self.coeff_ndim))
        return v.index_select(1, self.lam_index).reshape(-1, *self.lam_shape)

    def _times(self, t: Tensor | float) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64, device=self.lam.device)
        if t.dim() > 1:
            raise ValueError(f"times must be a scalar or a [B] vector, got shape {list(t.shape)}")
        t = t.reshape(-1)
        if self.validate_args and not torch.compiler.is_compiling():
            if bool(((t < 0) | (t > 1) | t.isnan()).any()):
                raise ValueError(f"times must lie in [0, 1], got values from {t.min().item()} to {t.max().item()}")
        return t

    def _batch_times(self, t: Tensor | float, batch: int, device: torch.device) -> Tensor:
        t = torch.as_tensor(t, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape [{batch}] (one time per sample), got {list(t.shape)}")
        return t

    def _check_images(self, x: Tensor, name: str, like: Tensor | None = None) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if tuple(x.shape[1:]) != self.basis.shape or x.dim() != 4:
            raise ValueError(f"{name} must have shape [B, {', '.join(map(str, self.basis.shape))}], got {list(x.shape)}")
        if like is not None and x.shape != like.shape:
            raise ValueError(f"{name} must have the same shape as the images, {list(like.shape)}, got {list(x.shape)}")


def check_monotone_snr(schedule: Schedule, lam: Tensor, points: int = 513) -> None:
    """Reject a schedule whose SNR increases anywhere in t for any coefficient (eq. 16 needs
    ``alpha_{t|s}^2 sigma_s^2 <= sigma_t^2``), or that is not finite."""
    unique = torch.unique(lam.reshape(-1).cpu())
    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64).reshape(-1, 1)
    log_alpha, log_sigma = schedule.log_alpha_sigma(t, unique)
    logsnr = (2.0 * (log_alpha - log_sigma)).expand(points, unique.numel())
    if not bool(torch.isfinite(logsnr).all()):
        bad = (~torch.isfinite(logsnr)).nonzero()[0]
        raise ValueError(
            f"{schedule!r} gives a non-finite log-SNR at t={t[bad[0], 0].item():.4g} for eigenvalue "
            f"{unique[bad[1]].item():.4g}: alpha_t and sigma_t must be positive and finite on [0, 1]"
        )
    rise = logsnr[1:] - logsnr[:-1]
    tol = 1e-9 * (1.0 + logsnr[:-1].abs())
    if bool((rise > tol).any()):
        i, k = (rise > tol).nonzero()[0].tolist()
        raise ValueError(
            f"{schedule!r} is invalid: the SNR of the coefficient with eigenvalue {unique[k].item():.4g} "
            f"increases between t={t[i, 0].item():.4g} and t={t[i + 1, 0].item():.4g} "
            f"(log-SNR {logsnr[i, k].item():.4g} -> {logsnr[i + 1, k].item():.4g}); a diffusion needs "
            f"a non-increasing SNR in t for every coefficient (eq. 16)"
        )


def _parametrization(p: str | Parametrization, basis: Basis) -> Parametrization:
    if isinstance(p, Parametrization):
        return p
    return build_parametrization(p, basis)


def _broadcast_shape(lam: Tensor, coeff_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Right-align the eigenvalue table with the coefficient shape (missing leading dims are 1)."""
    if lam.dim() > len(coeff_shape):
        raise ValueError(f"eigenvalues of shape {list(lam.shape)} do not fit coefficients {list(coeff_shape)}")
    shape = (1,) * (len(coeff_shape) - lam.dim()) + tuple(lam.shape)
    torch.broadcast_shapes(shape, coeff_shape)
    return shape


def _logsnr(log_alpha: Tensor, log_sigma: Tensor) -> Tensor:
    return 2.0 * (log_alpha - log_sigma)


def _is_scalar(a: Tensor) -> bool:
    return all(d == 1 for d in a.shape[1:])


def _pixel(a: Tensor) -> Tensor:
    return a.reshape(-1, 1, 1, 1)
