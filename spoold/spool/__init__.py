"""The spool's contract: what is on disk and the plain records every process shares.

The folder protocol (protocol.py: layout, atomic writes, claim, requeue and publish
renames), making writes durable (durability.py), what in inbox/ is a job (entries.py),
the job model and its state machine (job.py), the manifest (manifest.py) and the
records it keeps (records.py), the events log (events.py), leases (leases.py), time
(clock.py), the filesystem's type (fstype.py), transient errors (transient.py),
duplicates (dedup.py), who may cancel (owners.py), the vocabularies a job may use
(formats.py, pages.py, allow_fetch.py) and a big PDF's parts (parts.py).

May import: the standard library, pydantic and spoold.errors. Nothing here knows what a
PDF looks like or how a daemon runs: every other package builds on this one.
"""
