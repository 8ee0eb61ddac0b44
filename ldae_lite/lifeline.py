"""Worker processes that end when the process that started them ends, however it ends.

A worker of a parallel trajectory trains for minutes. Were its parent killed (SIGKILL, the out-of-memory
killer, a closed terminal, a restarted notebook kernel), nothing would stop it: it would train on, write
its result into the cache and hold a core nobody asked for. :func:`end_with_parent`, called first thing in
each worker, gives it two ways to end with its parent:

1. on Linux, the kernel sends the worker SIGKILL the moment its parent exits
   (``prctl(PR_SET_PDEATHSIG, SIGKILL)``): no Python code of the worker has to run, so it ends whatever
   it is doing, even inside a long torch operation;
2. on Linux, macOS and the other POSIX systems, a daemon thread looks once a second whether the parent
   is still the process that started the worker (a process whose parent dies is adopted by another one,
   so ``os.getppid()`` changes) and ends the worker with ``os._exit`` when it is not. (Windows keeps
   reporting the dead parent's id: there this thread never fires.)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0


def end_with_parent(parent_pid: int, poll_seconds: float = POLL_SECONDS, kernel: bool = True) -> None:
    """Make this process end when ``parent_pid`` (its parent, which started it) ends.

    kernel: on Linux, also ask the kernel for SIGKILL at the parent's death (False: the polling thread
    alone, as on other systems; a test uses it)."""
    if kernel and sys.platform.startswith("linux"):
        _kill_me_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the request above was in place
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, poll_seconds), name="end-with-parent", daemon=True).start()


def _kill_me_with_parent() -> bool:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) through the C library; True when the kernel accepted it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library the interpreter is linked with
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl here: the polling thread still ends the worker
        return False


def _watch(parent_pid: int, poll_seconds: float) -> None:
    """Until the parent is gone, sleep; then end the whole process at once (no cleanup, no result written)."""
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


__all__ = ["POLL_SECONDS", "end_with_parent"]
