"""Atomic checkpoint files, safe loading, and picking the newest good checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from nidiff.checkpoints import CorruptCheckpointError, atomic_save, newest_loadable, safe_load


def test_atomic_save_round_trip(tmp_path):
    state = {"global_step": 3, "w": torch.arange(5.0)}
    path = atomic_save(state, tmp_path / "a" / "last.ckpt")
    loaded = safe_load(path)
    assert loaded["global_step"] == 3 and torch.equal(loaded["w"], state["w"])
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_truncated_checkpoint_names_file_and_previous(tmp_path):
    atomic_save({"global_step": 10, "w": torch.ones(1000)}, tmp_path / "step_0000010.ckpt")
    atomic_save({"global_step": 20, "w": torch.ones(1000)}, tmp_path / "last.ckpt")
    data = (tmp_path / "last.ckpt").read_bytes()
    (tmp_path / "last.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError) as e:
        safe_load(tmp_path / "last.ckpt")
    assert str(tmp_path / "last.ckpt") in str(e.value) and "step_0000010.ckpt" in str(e.value)
    assert newest_loadable(tmp_path) == tmp_path / "step_0000010.ckpt"


def test_newest_loadable_prefers_the_highest_step(tmp_path):
    atomic_save({"global_step": 5}, tmp_path / "step_0000005.ckpt")
    atomic_save({"global_step": 7}, tmp_path / "step_0000007.ckpt")
    atomic_save({"global_step": 6}, tmp_path / "last.ckpt")
    assert newest_loadable(tmp_path) == tmp_path / "step_0000007.ckpt"
    (tmp_path / "garbage.ckpt").write_text("not a checkpoint")
    assert newest_loadable(tmp_path / "missing") is None


def test_code_in_a_checkpoint_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CorruptCheckpointError):
        safe_load(path)


def test_kill_during_write_leaves_previous_file_intact(tmp_path):
    """SIGKILL a process while it rewrites a large checkpoint: the old one still loads."""
    path = tmp_path / "last.ckpt"
    atomic_save({"global_step": 1, "w": torch.zeros(10)}, path)
    script = textwrap.dedent(
        f"""
        import torch, sys
        from nidiff.checkpoints import atomic_save

        class Slow:
            def __init__(self, f): self.f = f
            def write(self, b):
                sys.stdout.write("writing\\n"); sys.stdout.flush()
                import time; time.sleep(0.05)
                return self.f.write(b)
            def flush(self): return self.f.flush()

        def slow_save(obj, f):
            torch.save(obj, Slow(f))

        while True:
            atomic_save({{"global_step": 2, "w": torch.randn(2_000_000)}}, {str(path)!r}, save=slow_save)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = safe_load(path)
    assert state["global_step"] in (1, 2)
