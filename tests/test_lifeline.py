"""Workers end with their parent, however it ends: a real parallel trajectory whose parent is killed in
the middle of training (SIGKILL, SIGTERM) leaves no process behind and writes no result afterwards; the
polling thread alone (as on a system without prctl) ends a process whose parent was killed; a worker whose
parent died before it started ends at once."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")
TRAIN_STEPS = 300  # each run of the killed trajectory trains a few seconds: ...
WATCH_SECONDS = 8.0  # ... less than this, so a worker that outlived its parent would write its result here


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(TESTS.parent), OMP_NUM_THREADS="1", **extra)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, ppid, ...), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """The process runs (a zombie, dead and waiting to be reaped by whoever adopted it, does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: its children, theirs, ..."""
    children = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def wait_until(condition, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)


def start(args, **env) -> tuple[subprocess.Popen, list[str]]:
    """A Python process and the list its output lines (and its children's) are appended to as they come."""
    proc = subprocess.Popen([sys.executable, *args], env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []

    def read():
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def stop(proc: subprocess.Popen, pids) -> None:
    """Whatever a failed test left running, ended by pid (only processes this test started)."""
    for pid in [proc.pid, *pids]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def results(runs: Path) -> list[Path]:
    return sorted(runs.glob("denoisers/*/result.json")) + sorted(runs.glob("baselines/*.json"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_trajectory_leaves_no_worker_and_writes_nothing_more(tmp_path, sig):
    proc, lines = start([str(TESTS / "_parallel_trajectory.py"), str(TRAIN_STEPS)], LDAE_RUNS=str(tmp_path))
    family = set()
    try:
        def workers():
            return [int(line.split()[2].rstrip(":")) for line in list(lines) if line.startswith("worker pid ")]

        wait_until(lambda: len(workers()) == 2 or proc.poll() is not None, 180, "two workers started")
        assert proc.poll() is None, "".join(lines)
        time.sleep(1.0)  # into their runs
        family = descendants(proc.pid)  # the workers, and multiprocessing's resource tracker
        assert set(workers()) <= family
        written = results(tmp_path)
        os.kill(proc.pid, sig)
        assert proc.wait(10) == -sig
        wait_until(lambda: not any(alive(pid) for pid in family), 5, f"the processes {sorted(family)} end")
        time.sleep(WATCH_SECONDS)
        assert results(tmp_path) == written, "".join(lines)
    finally:
        stop(proc, family)


def test_the_polling_thread_alone_ends_an_orphan(tmp_path):
    """kernel=False: no prctl, as on macOS; the thread sees the new parent and ends the process."""
    child = ("import os, time; from ldae_lite.lifeline import end_with_parent; "
             "end_with_parent(os.getppid(), poll_seconds=0.1, kernel=False); print('child', os.getpid(), flush=True); "
             "time.sleep(60)")
    parent = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)")
    proc, lines = start(["-c", parent])
    pids = []
    try:
        wait_until(lambda: any(line.startswith("child ") for line in list(lines)), 60, "the child started")
        pids = [int(line.split()[1]) for line in lines if line.startswith("child ")]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not alive(pids[0]), 3, "the orphan ends")
    finally:
        stop(proc, pids)


def test_a_worker_whose_parent_is_already_gone_ends_at_once():
    code = "from ldae_lite.lifeline import end_with_parent; end_with_parent(-1); print('still here')"
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "still here" not in out.stdout
