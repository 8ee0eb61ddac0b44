"""Checkpoint files that are either complete or absent, never half written.

A training run may be stopped at any moment: Ctrl-C, a notebook kernel interrupt, a cluster job that
runs out of time, a full disk. If `torch.save` wrote straight into `run.pt`, any of these could leave
a truncated file that breaks the next resume. So a checkpoint is written to a temporary file in the
same folder, flushed to disk, and renamed over the old one with `os.replace`, which is atomic on POSIX
and on Windows: a reader sees the old file or the new one, nothing in between.

Loading is the mirror image: a file that cannot be read is reported (naming it) and treated as
absent, so the caller starts over instead of crashing on a damaged file.

Two helpers make the *content* resumable exactly: `rng_state` / `set_rng_state` capture every random
stream a training step draws from, and `StopAfterStep` moves a Ctrl-C to the end of the current step,
so that the state saved on an interrupt is one the uninterrupted run also passed through.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch


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


def load_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict | None:
    """Load a checkpoint dict onto the CPU, or None when there is nothing usable.

    Missing file -> None, silently. A file that fails to load, is not a dict, or lacks one of the
    `required` keys -> a RuntimeWarning naming the file and the reason, then None (start over).
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
    except Exception as err:  # any failure means the same thing here: the file is not usable
        warnings.warn(
            f"checkpoint {path} is corrupted or incomplete ({type(err).__name__}: {err}); "
            "ignoring it and training from scratch",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return ckpt


def rng_state(data_gen: torch.Generator, loss_gen: torch.Generator, device: torch.device) -> dict:
    """Every random stream of a training step: batch indices, the loss's noise, torch's global RNG."""
    return {"data": data_gen.get_state(), "loss": loss_gen.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def set_rng_state(state: dict, data_gen: torch.Generator, loss_gen: torch.Generator,
                  device: torch.device) -> None:
    """Inverse of :func:`rng_state`."""
    data_gen.set_state(state["data"])
    loss_gen.set_state(state["loss"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class StopAfterStep:
    """Turn the first Ctrl-C (SIGINT) into a request to stop at the end of the current step.

    A KeyboardInterrupt raised in the middle of a step could land between two parameter updates of
    the optimizer, or after the generators have moved on: a checkpoint written then would not resume
    exactly. With this context manager active the loop checks `.requested` after each step; a second
    Ctrl-C interrupts at once. Inactive (a no-op) when asked, or outside the main thread, where
    Python does not allow signal handlers.
    """

    def __init__(self, active: bool = True):
        self.requested, self.active, self.previous = False, active, None

    def __enter__(self) -> StopAfterStep:
        if self.active and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
