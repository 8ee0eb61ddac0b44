"""What every benchmark here shares: the run's environment (machine, commit, load) and writing
its results, a JSON file and a Markdown file beside it, atomically.

The two benchmark scripts import this module as a sibling file (benchmarks/ is not a package).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from ldae_lite import device as device_mod
from ldae_lite.experiment import write_json


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


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (tmp file + os.replace), as experiment.write_json does for JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)




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
    write_json(out, report)  # atomic: tmp file + os.replace
    md = out.with_suffix(".md")
    write_text(md, report["markdown"])
    return md
