"""Workers that end with the server process that started them.

``bentoml serve`` is a supervisor (circus) with one process per worker; the API worker holds the
listening socket too. Killed with SIGKILL (an OOM kill, ``kill -9``), the supervisor leaves its
workers running: the port stays open, nothing restarts them, and a new server cannot bind it.
Linux delivers a chosen signal to a process when its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def exit_with_parent() -> None:
    """In a BentoML worker on Linux: receive SIGTERM (uvicorn's orderly stop) when the supervisor dies."""
    from bentoml._internal.context import server_context

    if server_context.worker_index is None or not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
