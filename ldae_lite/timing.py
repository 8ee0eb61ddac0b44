"""Where the time goes: named phases, timed where they happen, collected by whoever asks, and added up
into a breakdown of a trajectory's wall time.

``with phase("training"): ...`` times a block under a name; ``with record() as phases: ...`` collects the
seconds of every phase timed inside it, however deep in the calls, into ``phases.seconds``. Phases nest:
the seconds of an inner phase count for it alone, not also for the phase around it (fitting a tokenizer
loads its images: those seconds are "data", not "tokenizers"). Recorders nest too: a phase counts in
every recorder open around it (a run's own, and the trajectory's around all of its runs).

Something reused from the cache costs nothing; :func:`cached` notes that a phase's work was reused, so
that a report can say "cached" rather than show a bare 0.

The open phases and recorders live in module-level lists: one process, one thread at a time (the workers
of a parallel trajectory are processes, each with its own lists; they send their phases back with their
results, and :func:`add` counts them in the parent's recorders).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

# The phases of a run, in the order a run meets them (data and tokenizers before training, ...):
#   data: loading a split and preparing it (encoding it into the tokenizer's latent);
#   cnn: training the label-trained CNN; tokenizers: fitting them;
#   training: the denoiser's training loop; features: the encoder's features for the probes;
#   probes: the linear probe and kNN (the raw-pixel baseline's too); sampling: DDIM and the Frechet distance.
PHASES = ("data", "cnn", "tokenizers", "training", "features", "probes", "sampling")
# What a breakdown adds: worker-seconds no job used (a parallel trajectory), and the rest of the wall time.
BREAKDOWN = PHASES + ("workers_idle", "other")


@dataclass(eq=False)  # a recorder is itself, not its contents (two empty ones are two recorders)
class Phases:
    """Seconds per phase, and the phases whose work was (at least once) reused from the cache."""

    seconds: dict[str, float] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        """Plain JSON: {"seconds": {phase: s}, "cached": [phase, ...]} (what a worker sends back)."""
        return {"seconds": dict(self.seconds), "cached": sorted(self.cached)}


_recorders: list[Phases] = []  # open recorders, outermost first
_open: list[list] = []  # open phases, outermost first: [name, seconds spent in phases inside it]


@contextlib.contextmanager
def record():
    """Inside: every phase timed (here or in anything called) is added to the :class:`Phases` yielded."""
    phases = Phases()
    _recorders.append(phases)
    try:
        yield phases
    finally:
        _recorders.remove(phases)


@contextlib.contextmanager
def phase(name: str):
    """Time the block as phase ``name`` (one of :data:`PHASES`), less the phases opened inside it."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; the phases are {PHASES}")
    frame = [name, 0.0]
    _open.append(frame)
    start = time.perf_counter()
    try:
        yield
    finally:
        total = time.perf_counter() - start
        _open.pop()
        if _open:
            _open[-1][1] += total  # the phase around this one did not spend these seconds itself
        add({"seconds": {name: total - frame[1]}})


def cached(*names: str) -> None:
    """Note that the work of these phases was reused from the cache (it cost no time)."""
    add({"cached": list(names)})


def add(phases: dict) -> None:
    """Count ``phases`` (:meth:`Phases.as_dict`, e.g. a worker's) in every open recorder."""
    for rec in _recorders:
        for name, seconds in phases.get("seconds", {}).items():
            rec.seconds[name] = rec.seconds.get(name, 0.0) + seconds
        rec.cached.update(phases.get("cached", ()))


def breakdown(phases: Phases, wall: float, workers: int = 1, pool_wall: float = 0.0, busy: float = 0.0) -> dict:
    """A trajectory's time, phase by phase: {wall_seconds, workers, worker_seconds, busy_percent, phases}.

    With one process, the phases share the wall time. With ``workers`` processes for ``pool_wall`` of the
    ``wall`` seconds, each of them has those seconds: the time to share is the wall time with the pool's
    counted once per worker (``worker_seconds``), and a second in a phase is a worker-second.
    ``workers_idle`` is what the pool's workers did not use (available minus ``busy``, the seconds of
    their jobs), ``other`` what no phase accounts for (starting processes, writing results, Python).
    Each phase: {seconds, percent (of worker_seconds), cached (its work was reused and cost nothing)}.
    busy_percent: busy over available worker-seconds (None with one process)."""
    available = workers * pool_wall
    total = wall + (workers - 1) * pool_wall
    seconds = {name: phases.seconds.get(name, 0.0) for name in PHASES}
    seconds["workers_idle"] = available - busy if pool_wall else 0.0
    seconds["other"] = total - sum(seconds.values())
    return dict(wall_seconds=wall, workers=workers, worker_seconds=total,
                busy_percent=100 * busy / available if pool_wall else None,
                phases={name: dict(seconds=s, percent=100 * s / total if total else 0.0,
                                   cached=name in phases.cached and s == 0.0)
                        for name, s in seconds.items()})


__all__ = ["BREAKDOWN", "PHASES", "Phases", "add", "breakdown", "cached", "phase", "record"]
