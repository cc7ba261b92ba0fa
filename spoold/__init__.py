"""spoold: a hot-folder conversion daemon with a spool-directory job queue."""

__version__ = "0.1.0"
