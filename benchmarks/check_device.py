"""Correctness on a device before timing anything: the DCT, the forward process, a few steps.

    python benchmarks/check_device.py --device cuda [--size cifar10]
    python benchmarks/check_device.py --device cpu --size tiny

1. The DCT on the device against a float64 reference on the CPU (``scipy.fft.dctn(norm="ortho")``
   if SciPy imports, else the same matrices in float64), plain and under bf16 autocast, where it
   must stay float32 with the same error (a bf16 DCT would be ~1e-2 off; TF32 ~1e-3).
2. ``diffuse`` (eq. 21) with the blurring schedule on the device against float64 on the CPU.
3. A few training steps of the recipe's network (``TrainStep``) in fp32 and bf16: losses and
   weights finite.

Prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import argparse

import torch

from harness import build_recipe, compose_recipe, describe_device, pick_device

TOLERANCE = 1e-5  # float32 transforms of 32x32 images: errors ~1e-6 of the coefficients' scale


def reference_dct(x: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Orthonormal 2-D DCT-II over the last two axes in float64 on the CPU."""
    try:
        from scipy.fft import dctn
    except ImportError:
        from nidiff.bases.dct import dct_matrix

        d_h, d_w = dct_matrix(x.shape[-2]), dct_matrix(x.shape[-1])
        return d_h @ x.double() @ d_w.T, "float64 DCT matrices (SciPy not installed)"
    return torch.from_numpy(dctn(x.double().numpy(), axes=(-2, -1), norm="ortho")), "scipy.fft.dctn float64"


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--size", default="cifar10", choices=["cifar10", "tiny"])
    p.add_argument("--batch", type=int, default=16, help="batch of the training steps")
    p.add_argument("--steps", type=int, default=3, help="training steps per precision")
    args = p.parse_args()
    device = pick_device(args.device)
    import nidiff
    from nidiff.training.step import TrainStep

    print(f"device check on {describe_device(device)}; float32 matmul precision "
          f"{torch.get_float32_matmul_precision()}")
    results: list[tuple[str, bool, str]] = []
    g = torch.Generator().manual_seed(0)
    x = torch.rand(128, 3, 32, 32, generator=g) * 2 - 1
    basis = nidiff.build_basis("dct", shape=(3, 32, 32)).to(device)
    ref, ref_name = reference_dct(x)
    xd = x.to(device)
    u = basis.to_coeffs(xd)
    results.append(("DCT vs " + ref_name, relative_error(u, ref) < TOLERANCE, f"rel. error {relative_error(u, ref):.2e}"))
    with torch.autocast(device.type, dtype=torch.bfloat16):
        u_auto = basis.to_coeffs(xd)
        back = basis.from_coeffs(u_auto)
    err = relative_error(u_auto, ref)
    results.append(("DCT under bf16 autocast stays float32", u_auto.dtype == torch.float32 and err < TOLERANCE,
                    f"dtype {u_auto.dtype}, rel. error {err:.2e}"))
    err = relative_error(back, x)
    results.append(("IDCT(DCT(x)) = x under autocast", err < TOLERANCE, f"rel. error {err:.2e}"))

    cfg = compose_recipe(args.size, "dct")
    schedule = build_recipe(cfg)[0].schedule
    cpu64 = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(3, 32, 32)), schedule)
    dev = nidiff.GaussianDiffusion(nidiff.build_basis("dct", shape=(3, 32, 32)), schedule,
                                   validate_args=False).to(device)
    t = torch.rand(128, generator=g, dtype=torch.float64)
    eps = torch.randn(x.shape, generator=g)
    z_ref, _ = cpu64.diffuse(x.double(), t, eps=eps.double())
    z_dev, _ = dev.diffuse(xd, t.float().to(device), eps=eps.to(device))
    err = relative_error(z_dev, z_ref)
    results.append(("diffuse (eq. 21) vs float64 CPU", err < 1e-4, f"rel. error {err:.2e}"))

    for precision in ("32", "bf16"):
        torch.manual_seed(0)
        diffusion, net = build_recipe(cfg)
        net = net.to(device)
        step = TrainStep(net, diffusion, lr=cfg.optim.lr, ema_decay=cfg.ema.decay, precision=precision)
        batch = xd[: args.batch]
        losses = torch.stack([step(batch) for _ in range(args.steps)]).cpu()
        weights_ok = all(bool(torch.isfinite(q).all()) for q in (*net.parameters(), *step.ema.module.parameters()))
        ok = bool(torch.isfinite(losses).all()) and weights_ok
        results.append((f"{args.steps} training steps, {precision}", ok,
                        f"losses {[round(v, 4) for v in losses.tolist()]}, weights finite: {weights_ok}"))
        del step, net

    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    failed = [name for name, ok, _ in results if not ok]
    print("device check: " + ("all passed" if not failed else f"FAILED: {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
