"""What every benchmark here shares: the run's environment (machine, commit, load) and writing
its results, a JSON file and a Markdown file beside it, atomically.

The two benchmark scripts import this module as a sibling file (benchmarks/ is not a package).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from ldae_lite import device as device_mod
from ldae_lite.cache import write_json, write_text  # atomic: tmp file, fsync, os.replace


def git_commit() -> str:
    """The checked-out commit, flagged when tracked files differ from it (then the numbers are not its)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + (" + uncommitted changes" if dirty else "")) if head else "unknown"




def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer read next sees it finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat), None elsewhere.

    Its change over a window minus this process's CPU time is what other jobs used meanwhile.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]  # user nice system idle iowait irq softirq ...
    except (OSError, ValueError):
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def models_at(rev: str):
    """ldae_lite/models.py as it was at git revision ``rev``, imported as its own module (for a baseline).

    Raises ValueError naming the revision when git cannot show the file there.
    """
    root = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(["git", "show", f"{rev}:ldae_lite/models.py"], cwd=root, capture_output=True,
                                text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise ValueError(f"--baseline {rev!r}: git cannot show ldae_lite/models.py at that revision ({e})") from None
    # Outside its package the file's relative imports (`from . import validate`) name the package instead.
    source = re.sub(r"^from \.(\w*) import", lambda m: f"from ldae_lite{'.' + m[1] if m[1] else ''} import", source,
                    flags=re.M)
    path = Path(tempfile.mkdtemp(prefix="ldae_baseline_")) / f"models_at_{rev.replace('/', '_')}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def profile_ops(steps: list, device: torch.device, n: int, top: int = 15) -> list[dict]:
    """torch.profiler over ``n`` calls of each closure in ``steps``: the ``top`` ops by self time, as
    dict(op, ms=[ms per call for each closure]) (device time on CUDA, CPU time elsewhere).

    Self time is wall time inside each op: on a loaded machine it includes the time other jobs held the
    CPU, so read it as where the time goes, not as an exact split.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    per_step = []
    for step in steps:
        with profile(activities=activities) as prof:
            for _ in range(n):
                step()
            sync(device)
        times = {}
        for e in prof.key_averages():
            us = getattr(e, "self_device_time_total", 0) if device.type == "cuda" else e.self_cpu_time_total
            times[e.key] = times.get(e.key, 0.0) + us / 1000 / n
        per_step.append(times)
    ops = sorted(set().union(*per_step), key=lambda k: -max(t.get(k, 0.0) for t in per_step))
    return [dict(op=k, ms=[t.get(k, 0.0) for t in per_step]) for k in ops[:top]]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where the OS has none): how busy the machine was."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def run_meta(device: torch.device, script: str, argv: list[str]) -> dict:
    """Machine, software, commit, command and date of a run: what makes a results file self-explaining."""
    return dict(device=device_mod.describe(device), device_kind=device.type,
                machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPUs",
                torch=torch.__version__, python=platform.python_version(), threads=torch.get_num_threads(),
                commit=git_commit(), command=" ".join([f"benchmarks/{script}"] + list(argv)),
                created=time.strftime("%Y-%m-%d %H:%M:%S %z"), load_before=load_average())


def write_results(out: Path, report: dict) -> Path:
    """``report`` as JSON at ``out`` and its "markdown" entry at ``out`` with suffix .md; returns the latter."""
    write_json(out, report)
    md = out.with_suffix(".md")
    write_text(md, report["markdown"])
    return md
