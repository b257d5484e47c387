"""Code in docs/ runs as it stands."""

from __future__ import annotations

import math
import re

import pytest
import torch

import nidiff
from nidiff.registries import BASES
from tests.docs_examples import (
    DOCS,
    EXAMPLE_NAMES,
    load_howto_schedule_module,
    load_sampler_module,
    python_blocks,
    unload_howto_schedule_module,
    unload_sampler_module,
)


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
    text = (DOCS / page).read_text()
    for name in re.findall(r'build_basis\("([a-z_0-9]+)"', text):
        assert name in nidiff.list_bases() or name in EXAMPLE_NAMES, (page, name)
    for name in re.findall(r'build_schedule\("([a-z_0-9]+)"', text):
        assert name in nidiff.list_schedules() or name in EXAMPLE_NAMES, (page, name)


def test_add_a_schedule_example_runs(capsys):
    """docs/howto-schedule.md: the class, its Python use, its printed values and its viz process."""
    from nidiff.viz.process import build_process, parse_process

    try:
        module = load_howto_schedule_module()
        (block,) = [b for b in python_blocks("howto-schedule.md") if "import my_schedules" in b]
        namespace: dict = {}
        exec(compile(block, "docs/howto-schedule.md", "exec"), namespace)
        low, high = (float(v) for v in capsys.readouterr().out.split())
        assert low == pytest.approx(0.0, abs=1e-6)  # the cosine log-SNR at t = 0.5
        assert high == pytest.approx(-4 * (31 / 32) ** 2, abs=1e-4) and round(high, 2) == -3.75
        assert bool(torch.isfinite(namespace["z_t"]).all())
        schedule = namespace["diffusion"].schedule
        assert isinstance(schedule, module.ShiftedCosine) and schedule.per_coefficient
        # variance preserving for every coefficient, and shift=0 is the cosine schedule exactly
        alpha, sigma = namespace["diffusion"].alpha_sigma(torch.rand(5), dtype=torch.float64)
        torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha))
        t, lam = torch.rand(7, 1, dtype=torch.float64), torch.rand(9, dtype=torch.float64) * 2 * math.pi**2
        cosine = nidiff.build_schedule("cosine").log_alpha_sigma(t, lam)
        for ours, ref in zip(module.ShiftedCosine(shift=0).log_alpha_sigma(t, lam), cosine):
            torch.testing.assert_close(ours, ref.expand_as(ours))
        with pytest.raises(ValueError, match="shift"):
            module.ShiftedCosine(shift=-1)
        # the page's `nidiff viz logsnr --process "dct:shifted_cosine(shift=4)"`
        process = parse_process("dct:shifted_cosine(shift=4)")
        assert build_process(process, (3, 8, 8)).schedule.shift == 4.0
    finally:
        unload_howto_schedule_module()


def test_add_a_schedule_command_line_builds_the_schedule(monkeypatch):
    """The page's `NIDIFF_PLUGINS=my_schedules nidiff train ... schedule=shifted_cosine schedule.shift=4`
    composes into exactly that schedule, from a config generated from its signature."""
    from omegaconf import OmegaConf

    from nidiff.build import build_component
    from nidiff.config import compose
    from nidiff.registries import SCHEDULES
    from tools.docgen import shell_commands

    (command,) = [c for c in shell_commands((DOCS / "howto-schedule.md").read_text(), "howto-schedule.md")
                  if c.argv[0] == "train"]
    assert command.env["NIDIFF_PLUGINS"] == "my_schedules"
    try:
        module = load_howto_schedule_module()
        monkeypatch.setenv("NIDIFF_PLUGINS", "my_schedules")
        cfg = compose(command.argv[1:])
        assert dict(cfg.schedule) == {"name": "shifted_cosine", "shift": 4, "logsnr_min": -10.0, "logsnr_max": 10.0}
        schedule = build_component(SCHEDULES, OmegaConf.to_container(cfg.schedule), "schedule")
        assert type(schedule) is module.ShiftedCosine and schedule.shift == 4.0
        assert (schedule.cosine.logsnr_min, schedule.cosine.logsnr_max) == (-10.0, 10.0)
        assert cfg.name == "quickstart"
    finally:
        unload_howto_schedule_module()

def test_add_a_sampler_example_runs():
    """docs/sampling.md's one-file sampler: registered, its option checked, temperature 1 is the
    ancestral step exactly (same noise), temperature 0 draws no noise at all."""
    from nidiff.sampling import SamplingPlan, ancestral, uniform_grid
    from tests.gaussian import gaussian_problem

    try:
        module = load_sampler_module()
        assert "tempered" in nidiff.list_samplers()
        problem = gaussian_problem("dct")
        d = problem.diffusion
        z = d.prior_sample(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        times = uniform_grid(20)
        a = ancestral(d, problem.model, z, times, generator=torch.Generator().manual_seed(2))
        b = nidiff.build_sampler("tempered", temperature=1.0)(d, problem.model, z, times,
                                                             generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
        cold = [nidiff.build_sampler("tempered", temperature=0.0)(d, problem.model, z, times,
                                                                  generator=torch.Generator().manual_seed(seed))
                for seed in (3, 4)]
        torch.testing.assert_close(cold[0], cold[1])
        assert SamplingPlan("tempered", 10, options={"temperature": 0.8}).build().temperature == 0.8
        with pytest.raises(ValueError, match="temperature"):
            SamplingPlan("tempered", 10, options={"temperature": 2})
        assert isinstance(nidiff.build_sampler("tempered"), module.Tempered)
    finally:
        unload_sampler_module()
