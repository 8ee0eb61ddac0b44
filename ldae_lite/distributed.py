"""Several processes, one model: joining and leaving a torchrun process group.

Under ``torchrun --nproc_per_node N script.py`` each process (rank) calls :func:`setup_distributed` first
and :func:`cleanup_distributed` last; :func:`ldae_lite.train.train` then wraps the model in
DistributedDataParallel and splits every batch over the ranks. Outside torchrun nothing changes: one
process, world size 1.
"""

from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist

_GLOO_DRAIN_S = 0.2  # see cleanup_distributed


def setup_distributed(backend: str | None = None) -> torch.device:
    """Join the torchrun process group (WORLD_SIZE > 1) and return this rank's device.

    backend None: nccl when CUDA is available (one GPU per rank, cuda:LOCAL_RANK), else gloo on CPU.
    Outside torchrun (WORLD_SIZE unset or 1) nothing is initialised and the device is cuda/mps/cpu.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        from .device import get_device

        return get_device()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend={backend!r}; allowed: 'nccl', 'gloo' or None")
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=device if backend == "nccl" else None)
    return device


def cleanup_distributed() -> None:
    """Leave the process group, if there is one (call once at the end of a torchrun script).

    A gloo worker thread frees each finished collective after the caller has moved on, and freeing one
    that holds Python tensors needs the GIL. If that happens while the interpreter shuts down, the
    process aborts ("terminate called without an active exception") after its work is done. So every
    rank meets at a barrier, leaves the group, and then sleeps briefly with the GIL released, letting
    the worker finish before the interpreter exits.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        time.sleep(_GLOO_DRAIN_S)


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not initialised: call setup_distributed()")
    return 0, 1
