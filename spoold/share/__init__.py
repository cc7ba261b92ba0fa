"""What people on the shared folder see besides the folders: output modes and the flat
out/ view with ERROR.txt (outputs.py), hooks run after a job ends (hooks.py), and the
retention purge (retention.py).

May import: spoold.spool, spoold.errors.
"""
