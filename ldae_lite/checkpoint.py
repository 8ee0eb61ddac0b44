"""Checkpoint files that are either complete or absent, never half written.

A training run may be stopped at any moment: Ctrl-C, a notebook kernel interrupt, a cluster job that
runs out of time, a full disk. If `torch.save` wrote straight into `run.pt`, any of these could leave
a truncated file that breaks the next resume. So a checkpoint is written to a temporary file in the
same folder, flushed to disk, and renamed over the old one with `os.replace`, which is atomic on POSIX
and on Windows: a reader sees the old file or the new one, nothing in between.

Loading is the mirror image: a file that cannot be read, or whose weights are not all finite, is
reported (naming it, and the tensor) and treated as absent, so the caller starts over instead of
crashing on a damaged file or training on from NaN.

The rest makes the *content* resumable exactly, for every training loop of the project (the denoiser's
in train.py, a tokenizer's fit, the label-trained CNN's):
  - `rng_state` / `set_rng_state` capture every random stream a training step draws from;
  - `StopAfterStep` moves a Ctrl-C or a SIGTERM (what a cluster sends before it kills a job) to the end
    of the current step, so that the state saved on an interrupt is one the uninterrupted run also
    passed through;
  - `Checkpointer` decides when a loop saves: every k steps, about every minute, and on an interrupt;
  - `resume` loads a checkpoint back, after checking that it belongs to the same run (`config_diff`).
A process killed outright (SIGKILL, a power cut) loses the steps since the last periodic checkpoint, and
no more: a rerun resumes from it and ends with the same parameters as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
import torch.distributed as dist

from . import validate

CKPT_SECONDS = 60.0  # default time between periodic checkpoints: at most about a minute of work is lost
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and the polite kill of a scheduler or `kill PID`


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Fill `path` atomically: `write(f)` writes into a binary tmp file in the same folder, which is
    fsynced and renamed over `path` (os.replace). Checkpoints, run results and reports go through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target: os.replace is only atomic within one file system.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # only when something failed before the rename
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` to `path` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = (),
                    finite: tuple[str, ...] = ()) -> dict | None:
    """Load a checkpoint dict onto the CPU, or None when there is nothing usable.

    Missing file -> None, silently. A file that fails to load, is not a dict, lacks one of the
    `required` keys, or holds a value that is not finite in one of the `finite` state dicts (the weights)
    -> a RuntimeWarning naming the file and the reason, then None (start over).
    `weights_only=True`: a checkpoint holds tensors, numbers, strings, lists and dicts only, and
    loading it can never execute code.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict):
            raise TypeError(f"expected a dict, found {type(ckpt).__name__}")
        missing = [k for k in required if k not in ckpt]
        if missing:
            raise KeyError(f"missing keys {missing}")
        for key in finite:
            check_finite(ckpt[key], key)
    except Exception as err:  # any failure means the same thing here: the file is not usable
        warnings.warn(
            f"checkpoint {path} is corrupted or incomplete ({type(err).__name__}: {err}); "
            "ignoring it and training from scratch",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return ckpt


def check_finite(state: dict, where: str) -> dict:
    """``state`` (a state dict) if every value of its tensors is finite; else ValueError naming the tensor
    and how many of its values are not (:func:`ldae_lite.validate.finite`)."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor):
            validate.finite(value, f"{where}[{name!r}]")
    return state


def rng_state(data_gen: torch.Generator, loss_gen: torch.Generator | None, device: torch.device) -> dict:
    """Every random stream of a training step: batch indices, the loss's noise (None: the loop has no
    such generator), torch's global RNG (dropout, initialisations) and the CUDA one on a GPU."""
    return {"data": data_gen.get_state(), "loss": None if loss_gen is None else loss_gen.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(state: dict, data_gen: torch.Generator, loss_gen: torch.Generator | None,
                  device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    data_gen.set_state(state["data"])
    if loss_gen is not None:
        loss_gen.set_state(state["loss"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def config_diff(saved: dict, now: dict) -> list[str]:
    """The settings where a checkpoint's run differs from this one, one readable line each."""
    return [f"{k}: {saved.get(k)!r} (checkpoint) != {now.get(k)!r} (now)"
            for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def resume(path: str | os.PathLike | None, run: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           data_gen: torch.Generator, loss_gen: torch.Generator | None, device: torch.device, *,
           desc: str = "train") -> dict | None:
    """Continue a single-process run from the checkpoint at ``path``, written by a :class:`Checkpointer`.

    run: the settings that decide what the run trains (steps, lr, seed, ...); the checkpoint's must equal
    them, else ValueError naming the fields that differ. Loads the model, optimizer and RNG states and
    returns the checkpoint (for the step and the caller's own entries); None when there is nothing to
    resume (no path, no file, or a damaged file: :func:`load_checkpoint` warns).
    """
    ckpt = load_checkpoint(path, ("model", "optimizer", "step", "run", "rng"), ("model",)) if path is not None else None
    if ckpt is None:
        return None
    diff = config_diff(ckpt["run"], run)
    if diff:
        raise ValueError(f"checkpoint {path} belongs to another run: {'; '.join(diff)}. "
                         "Use the same settings, or delete the file to start over")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"], data_gen, loss_gen, device)
    print(f"{desc}: resuming from step {ckpt['step']} ({path})")
    return ckpt


class StopAfterStep:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the end of the current step.

    A KeyboardInterrupt raised in the middle of a step could land between two parameter updates of
    the optimizer, or after the generators have moved on: a checkpoint written then would not resume
    exactly. With this context manager active the loop checks `.requested` after each step; a second
    signal interrupts at once (KeyboardInterrupt). Inactive (a no-op) when asked, or outside the main
    thread, where Python does not allow signal handlers.
    """

    def __init__(self, active: bool = True):
        self.requested, self.active, self.previous = False, active, {}

    def __enter__(self) -> StopAfterStep:
        if self.active and threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
        self.previous = {}


class Checkpointer:
    """When a training loop saves, and what it does on Ctrl-C or SIGTERM: crash safety in one place.

        with Checkpointer(path, state, start=step, steps=steps, every=k) as ckpt:
            for step in range(start, steps):
                with ckpt.updating(step):             # the update from `step` to `step + 1` done steps
                    ...                               # batch, loss, optimizer step
                ckpt.after_step(step + 1, log_point)  # a periodic checkpoint, when one is due
                ckpt.stop_if_requested()              # Ctrl-C or SIGTERM arrived: KeyboardInterrupt

    state(step) -> dict: everything a resume needs at `step` steps done (model, optimizer, RNG states ...).
    Periodic checkpoints: every ``every`` steps, and at the first log point ``seconds`` after the last
    save (or the start); none at the last step, whose end the loop itself handles. On a KeyboardInterrupt
    between two updates, the last finished step is saved before the exception goes on; in the middle of
    an update nothing is (the state is half updated: the previous checkpoint stays).
    Distributed (world_size > 1): ``state`` is called on every rank (it may gather) and rank 0 writes.
    Timed checkpoints and stop requests are agreed at log points (one all_reduce of two flags), so that
    every rank saves, and stops, at the same step.
    """

    def __init__(self, path: str | os.PathLike | None, state: Callable[[int], dict], *, start: int, steps: int,
                 every: int | None = None, seconds: float | None = CKPT_SECONDS, desc: str = "train",
                 rank: int = 0, world_size: int = 1, device: torch.device | str = "cpu"):
        self.path = None if path is None else Path(path)
        self.state, self.steps, self.every, self.seconds, self.desc = state, steps, every, seconds, desc
        self.rank, self.world_size, self.device = rank, world_size, torch.device(device)
        self.step = start  # updates done: what a checkpoint written now holds
        self.in_update, self.stop = False, False
        self._signals = StopAfterStep()
        self._last_save = time.perf_counter()

    def __enter__(self) -> Checkpointer:
        self._signals.__enter__()
        self._last_save = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
                self._interrupted()
        finally:
            self._signals.__exit__(exc_type, exc, tb)

    @contextlib.contextmanager
    def updating(self, step: int):
        """Around the update from ``step`` to ``step + 1``: an interrupt inside it saves nothing."""
        self.in_update = True
        yield
        self.step = step + 1  # before in_update is cleared: a save never sees a stale step
        self.in_update = False

    def after_step(self, step: int, log_point: bool) -> None:
        """Save when a periodic checkpoint is due after ``step`` steps; note a stop request."""
        every = bool(self.every) and step % self.every == 0
        timed = log_point and self.seconds is not None and time.perf_counter() - self._last_save >= self.seconds
        if self.world_size == 1:
            self.stop = self._signals.requested
        elif log_point:  # every rank takes part, so every rank decides alike
            flags = torch.tensor([float(timed), float(self._signals.requested)], device=self.device)
            dist.all_reduce(flags)  # a sum: > 0 when any rank wants it
            timed, self.stop = bool(flags[0] > 0), bool(flags[1] > 0)
        else:
            timed = False
        if (every or timed) and step < self.steps and self.path is not None:
            self.save(step)

    def stop_if_requested(self) -> None:
        """Raise KeyboardInterrupt when a Ctrl-C or SIGTERM asked to stop (agreed by every rank)."""
        if self.stop:
            raise KeyboardInterrupt("stop requested")

    def save(self, step: int) -> None:
        """Write the checkpoint of ``step`` steps done (a collective under DDP: every rank calls it, and
        every rank returns once the file is written, so that none can read an older one after)."""
        state = self.state(step)
        if self.rank == 0:
            atomic_save(state, self.path)
        if self.world_size > 1:
            dist.barrier()
        self._last_save = time.perf_counter()

    def _interrupted(self) -> None:
        # Under DDP a save is a collective: only safe when every rank stops here together (agreed stop).
        can_save = self.path is not None and not self.in_update and (self.world_size == 1 or self.stop)
        if can_save:
            self.save(self.step)
            if self.rank == 0:
                print(f"{self.desc}: interrupted; step {self.step} saved to {self.path}")
        elif self.path is not None and self.rank == 0:
            print(f"{self.desc}: interrupted at step {self.step}; a rerun resumes from the last checkpoint")
