"""A run directory from someone else is data: it never runs code, damage is found, one writer at a time.

The payloads are those an adversarial user tried: a saved configuration whose components are Hydra
``_target_`` nodes that write a marker file (``pathlib.Path.write_text``), in the checkpoint or in
``.hydra/config.yaml``, at the top of a component, nested in a schedule's factors, with ``_partial_``
and with ``_args_``; each is given to ``nidiff sample``, ``eval``, ``viz samples`` and ``resume=``,
and the marker must never appear. A checkpoint with a flipped bit in a weight tensor is refused by
its digest; a run written by nidiff 0.1 (class paths of registered components) still loads.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from nidiff.checkpoints import DIGEST_KEY, state_digest
from nidiff.cli import main
from tests.test_bad_input import train
from tests.test_train_cli import NIDIFF, TINY, run

MARKER_TEXT = "this file was written by code a run directory named"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real two-step run of the quickstart recipe at 32x32 (trained in this process)."""
    root = tmp_path_factory.mktemp("trusted")
    code = main([*train(root, "recipe=quickstart", "image_shape=[3,32,32]", "data.dataset=synthetic", "data.num_images=16")])
    assert code == 0
    return root / "run"


def payloads(marker: Path) -> dict[str, dict]:
    """Component nodes that, instantiated by Hydra, would write ``marker``."""
    write = {"_target_": "pathlib.Path.write_text",
             "_args_": [{"_target_": "pathlib.Path", "_args_": [str(marker)]}, MARKER_TEXT]}
    return {
        "basis": {"basis": write},
        "net": {"net": {**write, "base_channels": 8}},
        "nested factor": {"schedule": {"name": "product", "factors": [write]}},
        "partial": {"schedule": {**write, "_partial_": True}},
        "args only": {"basis": {"name": "dct", "shape": [3, 32, 32], "_args_": [write]}},
    }


def tampered_copy(run_dir: Path, dest: Path, change: dict, where: str) -> Path:
    """A copy of ``run_dir`` whose saved configuration has ``change`` merged in, in the checkpoints
    (with a digest that matches: the attacker recomputes it) or in ``.hydra/config.yaml`` only."""
    shutil.copytree(run_dir, dest)
    for ckpt in (dest / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        state.pop(DIGEST_KEY)
        if where == "checkpoint":
            state["config"] = {**state["config"], **copy.deepcopy(change)}
        else:
            state.pop("config")
        state[DIGEST_KEY] = state_digest(state)
        torch.save(state, ckpt)
    if where == "hydra":
        saved = yaml.safe_load((dest / ".hydra" / "config.yaml").read_text())
        (dest / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**saved, **change}))
    return dest


@pytest.mark.parametrize("where", ["checkpoint", "hydra"])
@pytest.mark.parametrize("payload", ["basis", "net", "nested factor", "partial", "args only"])
def test_a_saved_config_never_runs_code(tiny_run, tmp_path, capsys, payload, where):
    marker = tmp_path / "marker.txt"
    bad = tampered_copy(tiny_run, tmp_path / "run", payloads(marker)[payload], where)
    commands = {
        "sample": ["sample", "--run", str(bad), "--out", str(tmp_path / "samples"), "-n", "1", "--steps", "2"],
        "eval": ["eval", "--run", str(bad), "--out", str(tmp_path / "eval.json"), "--dataset", "synthetic",
                 "--limit", "2", "--n-t", "1"],
        "viz": ["viz", "samples", "--run", str(bad), "--out", str(tmp_path / "viz"), "--steps", "2", "--n", "1"],
    }
    for name, argv in commands.items():
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert "names" in err and ("_target_" in err or "not a registered" in err or "names code" in err), err
        assert not marker.exists(), name
    assert not (tmp_path / "samples").exists() and not (tmp_path / "eval.json").exists()
    if where == "checkpoint":  # resume compares the saved configuration with the given one: data too
        code = main(train(tmp_path, "recipe=quickstart", "data.dataset=synthetic", "data.num_images=16",
                          "trainer.max_steps=3", f"resume={bad}", run_dir=bad))
        assert code == 2 and not marker.exists()


def test_a_run_of_nidiff_0_1_still_loads(tiny_run, tmp_path, capsys):
    """Its components are named by class path (``_target_``): mapped back to registry names."""
    legacy = {"basis": {"_target_": "nidiff.bases.DCTBasis", "shape": [3, 32, 32]},
              "schedule": {"_target_": "nidiff.schedules.BlurringSchedule", "_convert_": "all",
                           "sigma_blur_max": 20.0, "d_min": 0.001, "blur_shape": "sin2", "logsnr_min": -10.0,
                           "logsnr_max": 10.0}}
    old = tampered_copy(tiny_run, tmp_path / "old", legacy, "checkpoint")
    state = torch.load(old / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    net = dict(state["config"]["net"])
    net["_target_"] = "nidiff.nets.UNet"
    del net["name"]
    state["config"]["net"] = net
    state.pop(DIGEST_KEY)  # nidiff 0.1 wrote no digest
    torch.save(state, old / "checkpoints" / "last.ckpt")
    assert main(["sample", "--run", str(old / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "s"), "-n", "2",
                 "--steps", "2"]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["000000.png", "000001.png"]
    state["config"]["basis"]["_target_"] = "os.system"
    torch.save(state, old / "checkpoints" / "last.ckpt")
    assert main(["sample", "--run", str(old / "checkpoints" / "last.ckpt"), "--out", str(tmp_path / "t")]) == 2
    assert "'os.system', which is not a registered basis" in capsys.readouterr().err


def test_a_flipped_bit_in_a_weight_is_found(tiny_run, tmp_path, capsys):
    damaged = tmp_path / "run"
    shutil.copytree(tiny_run, damaged)
    last = damaged / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    weight = state["state_dict"]["ema.module.conv_in.weight"]
    weight.view(torch.uint8).reshape(-1)[5] ^= 0x10  # one bit, the file format still valid
    torch.save(state, last)
    code = main(["sample", "--run", str(last), "--out", str(tmp_path / "s"), "-n", "1", "--steps", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "does not match its SHA-256 digest" in err and "step_0000002.ckpt" in err
    # a run directory skips it, says so, and uses the newest good checkpoint
    code = main(["sample", "--run", str(damaged), "--out", str(tmp_path / "t"), "-n", "1", "--steps", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "skipped" in out and "last.ckpt" in out and "step_0000002.ckpt" in out
    # raw damage to the file's bytes is found too (by the archive's own checks or by the digest)
    raw = bytearray((damaged / "checkpoints" / "step_0000002.ckpt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (damaged / "checkpoints" / "step_0000002.ckpt").write_bytes(bytes(raw))
    assert main(["sample", "--run", str(damaged), "--out", str(tmp_path / "u"), "-n", "1"]) == 2
    assert "no loadable checkpoint" in capsys.readouterr().err


def test_resume_refuses_a_run_whose_checkpoints_are_all_damaged(tiny_run, tmp_path, capsys):
    damaged = tmp_path / "run"
    shutil.copytree(tiny_run, damaged)
    for ckpt in (damaged / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(os.urandom(ckpt.stat().st_size))
    before = sorted(p.name for p in (damaged / "checkpoints").iterdir())
    code = main(train(tmp_path, "recipe=quickstart", "data.dataset=synthetic", "data.num_images=16",
                      "trainer.max_steps=3", f"resume={damaged}", run_dir=damaged))
    err = capsys.readouterr().err
    assert code == 2 and "none of its 2 checkpoint(s) loads" in err and "nothing was changed" in err
    assert sorted(p.name for p in (damaged / "checkpoints").iterdir()) == before  # no last-v1.ckpt


def test_one_writer_per_run(tmp_path):
    """A second `nidiff train` on a run directory in use is refused, naming the holder; the lock
    dies with its holder, SIGKILL included."""
    run_dir = tmp_path / "run"
    args = ["train", "recipe=quickstart", *TINY, "data.dataset=synthetic", "data.num_images=16",
            "trainer.max_steps=4", "checkpoint.every_n_steps=1", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "NIDIFF_DATA": str(tmp_path / "none"), "NIDIFF_FAULT_CHECKPOINT_DELAY": "30"}
    first = subprocess.Popen([NIDIFF, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list((run_dir / "checkpoints").glob(".*.tmp-*")) and time.time() < deadline:
            time.sleep(0.5)  # until the first run is writing its first checkpoint
        assert first.poll() is None
        second = run(args, tmp_path)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"in use by another nidiff process (pid {first.pid})" in second.stderr
        resume = run([*args[:-1], f"resume={run_dir}"], tmp_path)
        assert resume.returncode == 2 and f"pid {first.pid}" in resume.stderr
    finally:
        first.kill()
        first.wait()
    after = run([*args[:-1], "trainer.max_steps=1", f"resume={run_dir}"], tmp_path)
    assert after.returncode == 0, after.stderr[-2000:]  # the killed holder left no stale lock


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_weights_made_non_finite_at_a_step_stop_the_run_and_never_reach_the_disk(tmp_path, capsys, policy):
    """A step whose loss and gradient are finite but after which a weight is infinite (what an
    overflowing update leaves; an infinite learning rate is refused before the run): the run stops at
    the next check or checkpoint write, whatever the policy, and no checkpoint holds the weights."""
    import tests.faults  # noqa: F401  (registers the network faulty_unet in this process)

    code = main(train(tmp_path, "recipe=quickstart", "data.dataset=synthetic", "data.num_images=16",
                      "net.name=faulty_unet", "net.nan_calls=[3]", "net.nan_where=update",
                      f"nonfinite.policy={policy}", "trainer.max_steps=6", "checkpoint.every_n_steps=1"))
    err = capsys.readouterr().err
    assert code == 1 and "non-finite" in err and "were not checkpointed" in err, err
    for ckpt in (tmp_path / "run" / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()), ckpt


def test_skip_policy_has_a_limit(tmp_path, capsys):
    import tests.faults  # noqa: F401  (registers the network faulty_unet in this process)

    code = main(train(tmp_path, "recipe=quickstart", "data.dataset=synthetic", "data.num_images=64",
                      "net.name=faulty_unet", f"net.nan_calls=[{','.join(map(str, range(2, 40)))}]",
                      "nonfinite.policy=skip", "nonfinite.skip_max_consecutive=5", "trainer.max_steps=30"))
    err = capsys.readouterr().err
    assert code == 1 and "5 of them in a row" in err and "skip_max_consecutive=5" in err, err


def test_damaged_reference_statistics_are_refused(tmp_path):
    import numpy as np

    from nidiff.metrics.reference import ReferenceStatistics, load_reference, save_reference

    features = torch.randn(12, 2048, generator=torch.Generator().manual_seed(0)).double().numpy()
    stats = ReferenceStatistics(mu=features.mean(0), sigma=np.cov(features, rowvar=False), features=features,
                                count=12)
    protocol = {"dataset": "x", "split": "train", "network": "n", "weights_sha256": "a", "resize": "r"}
    path = save_reference(tmp_path / "ref.npz", stats, protocol)
    assert load_reference(path).features.shape == (12, 2048)
    arrays = dict(np.load(path))
    arrays["sigma"][5, 7] += 1e-12
    np.savez(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(ValueError, match="damaged: its arrays do not match its SHA-256 digest"):
        load_reference(tmp_path / "damaged.npz")
    np.savez(tmp_path / "objects.npz", mu=np.array([{"code": 1}], dtype=object), sigma=np.eye(2))
    with pytest.raises(ValueError, match="cannot be read|Object arrays"):
        load_reference(tmp_path / "objects.npz")
