"""Running spoold as a service: systemd's sd_notify (sdnotify.py), Prometheus metrics
(metrics.py), the log format (logs.py) and `spoold doctor` (doctor.py).

May import: spoold.spool, spoold.settings, spoold.errors; doctor.py also checks that
WeasyPrint loads and asks spoold.convert.scripts which scripts the fonts cover.
"""
