"""The HTTP gateway (`spoold serve`, docs/http.md): FastAPI on uvicorn, speaking only the
folder protocol. It stages uploads in tmp/ and renames them into inbox/, answers from the
folders and the events log, and cancels with markers; it never talks to a daemon, so any
number of gateways and daemons share one spool.

Modules: app.py (composition, middleware), hotpath.py (a job look-up and a job
submission, answered before routing), server.py (uvicorn, listening, TLS, slow
clients), auth.py (bearer tokens), spools.py (the spools served), index.py (job ids to
folders without listing done/), follower.py (the events log tailed once per spool),
uploads.py (streaming uploads into tmp/), idempotency.py (Idempotency-Key), records.py
(the job record), errors.py (the error envelope), routes_*.py (the endpoints),
docs_page.py (/docs, with no asset from the internet), routes_page.py and page/ (the
jobs page at `/`), signing.py (signed download links).

May import: spoold.api, spoold.tools, spoold.spool, spoold.settings, spoold.ops,
spoold.errors; never spoold.daemon, the worker's code or spoold.convert.
"""
