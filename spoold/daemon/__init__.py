"""The daemon: watch spools, claim jobs, run them in workers, publish the outcomes.

See docs/architecture.md for the data flow and what each module is for.

May import: spoold.spool, spoold.worker.spec (never the worker's code: it names the
entry points), spoold.share, spoold.ops, spoold.settings, spoold.errors. Never
spoold.convert: the daemon process does not load the conversion stack.
"""

from .jobfolder import ATTEMPT_HINT, state_of
from .loop import Daemon

__all__ = ["ATTEMPT_HINT", "Daemon", "state_of"]
