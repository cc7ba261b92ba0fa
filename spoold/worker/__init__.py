"""The worker side of the process boundary: what runs in a worker process.

spec.py holds what crosses the boundary (the pipe's messages, the running folder's
shared files, the entry points by name) with standard-library imports only, so the
daemon and the tools can import it; run.py runs one job's targets, split.py a big PDF's
split and merge, resources.py extracts resources.zip, stage.py reports the stage,
fonts.py sets up fontconfig, retire.py retires a worker that hit its memory limit.

May import: spoold.spool, spoold.convert, spoold.errors. Only the worker process imports
anything here but spec.py.
"""
