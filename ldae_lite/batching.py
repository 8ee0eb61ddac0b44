"""Apply a network to a whole data set, one batch at a time: the project's one inference loop.

Features for a probe, embeddings for a Frechet distance, a classifier's predictions, a tokenizer's
reconstructions: each is a function of one batch, applied to tens of thousands of images that do not fit
through a network at once. :func:`batched` is that loop, written once:

    feats = batched(lambda x: model.features(x).float().cpu(), images, 256, device="cuda")  # (N, F)

Several tensors with the same rows (two image sets, rows with their labels) go through their row indices:

    dist = batched(lambda i: distance(a[i], b[i]), torch.arange(len(a)), 256)  # (N,)

Put the network in eval mode first: in train mode a BatchNorm would mix the rows of a batch, and each
row of the result should depend on its own input row only.
"""

from __future__ import annotations

from typing import Callable

import torch


def batched(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int = 512, *,
            device: str | torch.device | None = None) -> torch.Tensor:
    """``fn`` on ``inputs[i:i + batch_size]`` for i = 0, batch_size, ...; the outputs concatenated on dim 0.

    inputs: (N, ...); fn: a batch (B, ...) -> (B, ...), without gradients (the loop runs under no_grad).
    device: where each batch is moved before ``fn`` sees it (None: where ``inputs`` are). The outputs
    stay where ``fn`` puts them: end ``fn`` with ``.cpu()`` to collect a large result in host memory.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size} must be a positive integer")
    if len(inputs) == 0:
        raise ValueError("batched() got no inputs (N = 0); allowed: a tensor with at least one row")
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            outputs.append(fn(batch if device is None else batch.to(device)))  # (B, ...)
    return torch.cat(outputs)  # (N, ...)
