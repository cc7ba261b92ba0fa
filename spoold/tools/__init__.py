"""A spool from outside a daemon: a job as `status`, `show` and `list` show it, from the
folders (jobview.py), finding one job (lookup.py), putting a job in (staging.py), and
the events log replayed against the state machine (checker.py, `spoold check-events`).

May import: spoold.spool, spoold.worker.spec, spoold.errors.
"""
