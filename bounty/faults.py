"""Fault injection for the crash tests: a worker kills itself at a named step when told to."""

from __future__ import annotations

import os
import signal

FAULT_ENV = "BOUNTY_FAULT_KILL_AT"


def fault_point(step: str) -> None:
    """SIGKILL this process at `step` when BOUNTY_FAULT_KILL_AT names it. Inert (one environment lookup)
    otherwise."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
