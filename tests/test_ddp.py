"""DistributedDataParallel through `train`: 2 CPU processes (gloo) under torch.distributed.run."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_ddp_two_ranks_agree_learn_and_resume_exactly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(ROOT / "tests" / "_ddp_worker.py"), str(tmp_path)]
    start = time.perf_counter()
    # A session of its own, so that on a timeout the launcher and both workers are killed together.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"DDP run did not finish in 90 s:\n{out[-3000:]}")
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, out[-3000:]

    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["rank"], r1["rank"], r0["world_size"]) == (0, 1, 2)
    for key in r0["a"]:  # DDP keeps the replicas identical
        assert torch.equal(r0["a"][key], r1["a"][key]), key
    losses = [loss for _, loss in r0["losses"]]
    assert r0["losses"] == r1["losses"]  # the all-reduced mean, the same on both ranks
    assert losses[-1] < 0.1 * losses[0]
    # stopped at step 17, resumed from the checkpoint at 15 (written by rank 0 with both ranks' RNG)
    assert r0["resumed_from"] == r1["resumed_from"] == 15
    for key in r0["a"]:
        assert torch.equal(r0["c"][key], r0["a"][key]), key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt", "rank0.pt", "rank1.pt"]
    assert seconds < 60, f"DDP test took {seconds:.0f} s"
