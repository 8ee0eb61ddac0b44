"""What a training loop shows and measures: the progress bar, the mean loss, images per second.

Shared by every training loop of the project (the denoiser's, a tokenizer's fit, the label-trained
CNN's), so that all three report the same numbers the same way:

  - the loss is summed on the device and read out (``.item()``, which waits for the device) only every
    ``log_every`` steps and at the last one: the mean since the previous read-out is recorded as
    (step, mean loss) and shown on the bar; a loss that is not finite stops training with an error;
  - images/s is measured between device syncs, leaving out the first ``SPEED_WARMUP`` steps of a
    session (allocator, kernel selection) and the time spent inside :meth:`Progress.paused` (checkpoints,
    callbacks). Under DDP the loss is averaged over ranks and images/s counts the global batch.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

SPEED_WARMUP = 5  # first steps of a session left out of images/s


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times measure computation and not launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Progress:
    """The bar and the measurements of one training session, from step ``start`` to ``steps``.

    losses: the list that (step, mean loss) entries are appended to (a resumed run passes its record).
    window: what :meth:`window` returned when a checkpoint was written (a resumed run passes it), so that
    the first mean after a resume is the one an uninterrupted run records.
    batch_size: images per step over all ranks (the global batch).
    """

    def __init__(self, desc: str, *, start: int, steps: int, batch_size: int, log_every: int,
                 device: torch.device | str, enabled: bool = True, world_size: int = 1,
                 losses: list | None = None, window: dict | None = None):
        self.device, self.start, self.steps = torch.device(device), start, steps
        self.batch_size, self.log_every, self.world_size, self.desc = batch_size, log_every, world_size, desc
        self.losses = [] if losses is None else losses
        self.bar = tqdm(total=steps, initial=start, desc=desc, disable=not enabled, dynamic_ncols=True)
        self._sum, self._n = torch.zeros((), device=self.device), 0  # loss since the last read-out
        if window is not None:
            self._sum, self._n = window["sum"].to(self.device, torch.float32), int(window["n"])
        self.t_begin = self._t_log = time.perf_counter()
        self._t_speed, self._paused = None, 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def log(self, step: int, loss: torch.Tensor) -> bool:
        """Count the loss of the step that made ``step`` steps done; True at a log point (a read-out)."""
        self._sum += loss.detach().float()
        self._n += 1
        if step - self.start == SPEED_WARMUP:
            sync(self.device)
            self._t_speed, self._paused = time.perf_counter(), 0.0
        log_point = step % self.log_every == 0 or step == self.steps
        if log_point:
            if self.world_size > 1:
                dist.all_reduce(self._sum)  # sum over ranks (gloo has no AVG) ...
                self._sum /= self.world_size  # ... then the mean
            mean = self._sum.item() / self._n  # .item() waits for the device
            if not math.isfinite(mean):
                raise FloatingPointError(f"{self.desc}: loss is {mean} at step {step}; lower the learning rate?")
            now = time.perf_counter()
            self.losses.append((step, mean))
            self.bar.set_postfix({"loss": f"{mean:.4f}",
                                  "img/s": f"{self._n * self.batch_size / (now - self._t_log):.0f}"})
            self._sum.zero_()
            self._n, self._t_log = 0, now
        self.bar.update(1)
        return log_point

    def window(self) -> dict:
        """The loss summed since the last read-out, and over how many steps: part of a checkpoint (on the
        CPU, so that ranks can gather it whatever their device)."""
        return {"sum": self._sum.detach().to("cpu", copy=True), "n": self._n}

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside does not count as training time for images/s (checkpoints, callbacks)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    def elapsed(self) -> float:
        """Wall-clock seconds since the session began, everything included."""
        return time.perf_counter() - self.t_begin

    def images_per_s(self, step: int) -> float | None:
        """Measured throughput of this session after ``step`` steps done; None when it trained no step."""
        sync(self.device)
        t_end, timed = time.perf_counter(), step - self.start - SPEED_WARMUP
        if self._t_speed is not None and timed > 0:
            return timed * self.batch_size / max(1e-9, t_end - self._t_speed - self._paused)
        if step > self.start:
            return (step - self.start) * self.batch_size / max(1e-9, t_end - self.t_begin)
        return None

    @property
    def final_loss(self) -> float | None:
        """The last recorded mean loss (None before the first log point)."""
        return self.losses[-1][1] if self.losses else None
