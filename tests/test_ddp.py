"""DistributedDataParallel through `train`: 2 CPU processes (gloo) under torch.distributed.run."""

import contextlib
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
    """Both ranks hold the same model, learn, resume exactly after an error and after a SIGTERM to one rank."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(ROOT / "tests" / "_ddp_worker.py"), str(tmp_path)]
    start = time.perf_counter()
    # A session of its own, so that on a timeout the launcher is killed with its group; the workers run in
    # sessions of their own and write their pids, so that they are killed too. Output goes to a file: a
    # pipe held open by a worker that is stuck would block the read.
    log = tmp_path.parent / f"{tmp_path.name}.log"
    with open(log, "w") as out_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            for pid_file in tmp_path.glob("pid*"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
            proc.wait()
            pytest.fail(f"DDP run did not finish in 90 s:\n{log.read_text()[-3000:]}")
    seconds = time.perf_counter() - start
    out = log.read_text()
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
    # a SIGTERM to rank 1 alone stopped both ranks at the next log point (15), saved, and resumed exactly
    assert r0["stopped_by_sigterm"] and r1["stopped_by_sigterm"]
    assert r0["resumed_after_sigterm"] == r1["resumed_after_sigterm"] == 15
    for key in r0["a"]:
        assert torch.equal(r0["e"][key], r0["a"][key]), key
    assert r0["losses_e"] == r0["losses"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.pt", "ddp_sigterm.pt", "pid0", "pid1", "rank0.pt",
                                                          "rank1.pt"]  # no temporary files left
    assert seconds < 60, f"DDP test took {seconds:.0f} s"
