"""Run by tests/test_ddp.py under `torch.distributed.run --nproc_per_node 2` (gloo, CPU).

In one process group: (A) train a tiny model straight through; (B) train it again with checkpoints,
stopped by an error at step 17 on every rank; (C) resume B; (D) train it again, with a SIGTERM to rank 1
alone at step 12: every rank stops at the next log point (15) and saves it; (E) resume D. Each rank saves
its parameters and losses to OUT/rank{r}.pt for the test to compare.
"""

import dataclasses
import os
import signal
import sys

import torch
from torch import nn

from ldae_lite.train import TrainConfig, cleanup_distributed, setup_distributed, train


class Stop(Exception):
    pass


def stop_at_17(step, stats):
    if step == 17:  # on every rank, so no rank is left waiting in a collective
        raise Stop()


def loss_fn(model, x, y, generator):
    noise = 0.1 * torch.randn(x.shape, generator=generator, device=x.device)  # per-rank noise stream
    return (model(x + noise).squeeze(-1) - y).pow(2).mean()


def fresh_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, 1))


def main(out: str) -> None:
    torch.set_num_threads(1)
    device = setup_distributed(backend="gloo")
    rank = torch.distributed.get_rank()
    with open(os.path.join(out, f"pid{rank}"), "w") as f:  # for the test to kill a stuck worker
        f.write(str(os.getpid()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    cfg = TrainConfig(steps=40, batch_size=64, lr=3e-2, ckpt_every=5, log_every=5)
    run = dict(device=device, progress=False, seed=0)

    a = fresh_model()
    stats_a = train(a, loss_fn, x, y, cfg, **run)

    ckpt = os.path.join(out, "ddp.pt")
    try:
        train(fresh_model(), loss_fn, x, y, cfg, ckpt_path=ckpt, on_step=stop_at_17, **run)
    except Stop:
        pass
    c = fresh_model()
    stats_c = train(c, loss_fn, x, y, cfg, ckpt_path=ckpt, **run)

    def sigterm_rank1_at_12(step, stats):
        if step == 12 and rank == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    term, no_periodic = os.path.join(out, "ddp_sigterm.pt"), dataclasses.replace(cfg, ckpt_every=None)
    try:
        train(fresh_model(), loss_fn, x, y, no_periodic, ckpt_path=term, on_step=sigterm_rank1_at_12, **run)
        stopped = False
    except KeyboardInterrupt:
        stopped = True
    e = fresh_model()
    stats_e = train(e, loss_fn, x, y, no_periodic, ckpt_path=term, **run)

    torch.save({"a": a.state_dict(), "c": c.state_dict(), "e": e.state_dict(), "losses": stats_a.losses,
                "losses_e": stats_e.losses, "resumed_from": stats_c.resumed_from,
                "stopped_by_sigterm": stopped, "resumed_after_sigterm": stats_e.resumed_from, "rank": rank,
                "world_size": torch.distributed.get_world_size()}, os.path.join(out, f"rank{rank}.pt"))
    cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
