"""Child processes that do not outlive the process that started them.

``make run`` and the test suite start redis-server, workers and servers of
their own. If the parent is killed outright (SIGKILL, a CI time-out), Linux
sends each such child SIGTERM through ``PR_SET_PDEATHSIG`` instead of leaving
it running with nobody to stop it. Elsewhere this does nothing.
"""

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def end_with_parent() -> None:
    """``preexec_fn`` for :class:`subprocess.Popen`: SIGTERM when the parent dies."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
