"""The daemon: watch spools, claim jobs, run them in workers, publish the outcomes.

See docs/architecture.md for the data flow and what each module is for.
"""

from .jobfolder import ATTEMPT_HINT, state_of
from .loop import Daemon

__all__ = ["ATTEMPT_HINT", "Daemon", "state_of"]
