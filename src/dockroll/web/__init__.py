"""The dashboard behind ``dockroll ui``: the same library calls as the CLI, over HTTP.

Pages show every environment (what ``status --json`` says), a rollout's live
timeline from its recorded analysis samples (server-sent events), history,
releases, the audit trail and the DORA report. Controls (promote-canary, abort,
pause, resume, rollback, approve) need a bearer token from ``--token-file`` and
are audited with the actor the token names; without one the dashboard is
read-only. Starlette, Jinja2 and uvicorn load only with this package::

    app = create_app(config, tokens=load_tokens(path))
    serve(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

from dockroll.web.app import create_app, serve
from dockroll.web.auth import Tokens, load_tokens

__all__ = ["Tokens", "create_app", "load_tokens", "serve"]
