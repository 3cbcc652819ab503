"""The Starlette application of ``dockroll ui``: pages, JSON, live events and controls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockroll.config import Config
from dockroll.errors import DockrollError, LedgerError, UsageError
from dockroll.ledger import Ledger, Outcome, open_ledger
from dockroll.pipeline.report import WINDOWS, duration_text
from dockroll.web import views
from dockroll.web.auth import Tokens
from dockroll.web.controls import ACTIONS, Controls

__all__ = ["create_app", "serve"]

HERE = Path(__file__).parent
EVENT_POLL_SECONDS = 0.5
"""How often a live timeline asks the ledger for new samples."""


class _Site:
    """The state every handler shares: configuration, tokens, the ledger, the templates."""

    def __init__(self, config: Config, tokens: Tokens, ledger_url: str | None) -> None:
        self.config = config
        self.tokens = tokens
        self.ledger_url = ledger_url
        self.ledger: Ledger = open_ledger(ledger_url, actor="dockroll ui")
        self.controls = Controls(config, ledger_url)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["duration"] = duration_text
        self.templates.filters["short"] = lambda digest: str(digest or "").removeprefix("sha256:")[
            :12
        ]
        self.templates.filters["percent"] = lambda v: "-" if v is None else f"{float(v):.1%}"

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        started = time.perf_counter()
        body = self.templates.get_template(name).render(
            service=self.config.service,
            environments=list(self.config.environments),
            controls=self.tokens.enabled,
            actions=ACTIONS,
            path=request.url.path,
            **context,
        )
        elapsed = (time.perf_counter() - started) * 1e3
        response = HTMLResponse(body, status_code=status_code)
        response.headers["Server-Timing"] = f"render;dur={elapsed:.1f}"
        return response


def _site(request: Request) -> _Site:
    site: _Site = request.app.state.site
    return site


def _problem(exc: DockrollError) -> JSONResponse:
    status = 404 if isinstance(exc, LedgerError) and "no " in exc.message[:3] else 400
    if isinstance(exc, UsageError):
        status = 409 if "no rollout" in exc.message else 400
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)


# -- pages ---------------------------------------------------------------------------------


def overview(request: Request) -> Response:
    site = _site(request)
    status = views.status_view(site.config, site.ledger)
    return site.page(request, "overview.html", status=status, title="Overview")


def deployment_page(request: Request) -> Response:
    site = _site(request)
    try:
        data = views.deployment_view(site.ledger, int(request.path_params["id"]))
    except LedgerError as exc:
        return site.page(request, "error.html", 404, title="Not found", error=exc.message)
    title = f"Deployment {data['deployment']['id']}"
    return site.page(request, "deployment.html", data=data, title=title, data_json=json.dumps(data))


def history_page(request: Request) -> Response:
    site = _site(request)
    query = request.query_params
    filters = {k: query.get(k) or None for k in ("env", "kind", "status")}
    entries = views.history_view(
        site.ledger,
        site.config.service,
        env=filters["env"],
        kind=filters["kind"],
        status=filters["status"],
    )
    return site.page(request, "history.html", entries=entries, filters=filters, title="History")


def release_page(request: Request) -> Response:
    site = _site(request)
    try:
        data = views.release_view(site.config, site.ledger, request.path_params["ref"])
    except LedgerError as exc:
        return site.page(request, "error.html", 404, title="Not found", error=exc.message)
    return site.page(
        request, "release.html", data=data, title=f"Release {data['release']['version']}"
    )


def audit_page(request: Request) -> Response:
    site = _site(request)
    query = request.query_params
    filters = {k: query.get(k) or None for k in ("env", "action", "actor")}
    events = views.audit_view(
        site.ledger,
        site.config.service,
        env=filters["env"],
        action=filters["action"],
        actor=filters["actor"],
    )
    return site.page(request, "audit.html", events=events, filters=filters, title="Audit")


def _days(request: Request) -> int:
    raw = request.query_params.get("days", "30")
    return int(raw) if raw.isdigit() and int(raw) in WINDOWS else 30


def report_page(request: Request) -> Response:
    site = _site(request)
    days = _days(request)
    report = views.report_view(site.ledger, None, days)
    return site.page(
        request, "report.html", report=report, days=days, windows=WINDOWS, title="DORA report"
    )


# -- JSON and events -----------------------------------------------------------------------


def api_status(request: Request) -> Response:
    site = _site(request)
    return JSONResponse(views.status_view(site.config, site.ledger))


def api_deployment(request: Request) -> Response:
    site = _site(request)
    after = request.query_params.get("after")
    try:
        data = views.deployment_view(
            site.ledger, int(request.path_params["id"]), after=int(after) if after else None
        )
    except LedgerError as exc:
        return _problem(exc)
    return JSONResponse(data)


def api_report(request: Request) -> Response:
    site = _site(request)
    return JSONResponse(views.report_view(site.ledger, None, _days(request)))


async def deployment_events(request: Request) -> Response:
    """Server-sent events of a deployment: ``sample`` for each new analysis sample,
    ``deployment`` when its steps or status change; the stream ends once it finished."""
    site = _site(request)
    deployment_id = int(request.path_params["id"])
    last = request.query_params.get("after") or request.headers.get("last-event-id")
    after = int(last) if last and last.isdigit() else None

    async def stream() -> AsyncIterator[str]:
        nonlocal after
        seen = ""
        while not await request.is_disconnected():
            try:
                data = await run_in_threadpool(
                    views.deployment_view, site.ledger, deployment_id, after=after
                )
            except LedgerError as exc:
                yield f"event: problem\ndata: {json.dumps({'error': exc.message})}\n\n"
                return
            for sample in data["samples"]:
                after = sample["id"]
                yield f"id: {after}\nevent: sample\ndata: {json.dumps(sample)}\n\n"
            state = json.dumps(data["deployment"], sort_keys=True)
            if state != seen:
                seen = state
                yield f"event: deployment\ndata: {state}\n\n"
            if data["finished"] and not data["samples"]:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(EVENT_POLL_SECONDS)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


# -- controls ------------------------------------------------------------------------------


def _actor(request: Request, site: _Site, action: str, env: str) -> str | Response:
    if not site.tokens.enabled:
        return JSONResponse(
            {"error": "this dashboard is read-only", "hint": "start `dockroll ui --token-file F`"},
            status_code=403,
        )
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return JSONResponse(
            {"error": "controls need a token", "hint": "send Authorization: Bearer TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="dockroll"'},
        )
    actor = site.tokens.actor(presented.strip())
    if actor is None:
        site.ledger.audit(
            action,
            service=site.config.service,
            env=env,
            outcome=Outcome.DENIED,
            who="unknown token (ui)",
            detail={"via": "ui", "why": "the token matches none in the token file"},
        )
        return JSONResponse({"error": "this token is not valid here"}, status_code=403)
    return f"{actor} (ui)"


async def control(request: Request) -> Response:
    site = _site(request)
    action, env = request.path_params["action"], request.path_params["env"]
    actor = _actor(request, site, action, env)
    if isinstance(actor, Response):
        return actor
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
    reference = body.get("release") or None
    reason = body.get("reason") or None
    try:
        code, result = await run_in_threadpool(
            site.controls.run, action, env, actor, reference=reference, reason=reason
        )
    except DockrollError as exc:
        return _problem(exc)
    return JSONResponse(result, status_code=code)


def job_status(request: Request) -> Response:
    job = _site(request).controls.job(int(request.path_params["id"]))
    if job is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(job.as_dict())


class _ServerTiming:
    """Adds ``Server-Timing: app;dur=MS``: from the request reaching the app to its
    response headers (ledger queries and rendering included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1e3
                headers = MutableHeaders(scope=message)
                timing = f"app;dur={elapsed:.1f}"
                known = headers.get("server-timing")
                headers["server-timing"] = f"{timing}, {known}" if known else timing
            await send(message)

        await self.app(scope, receive, timed)


def create_app(
    config: Config, tokens: Tokens | None = None, *, ledger_url: str | None = None
) -> Starlette:
    """The dashboard of ``config``'s service. Without ``tokens`` it is read-only."""
    site = _Site(config, tokens or Tokens(), ledger_url)
    routes = [
        Route("/", overview),
        Route("/deployments/{id:int}", deployment_page),
        Route("/history", history_page),
        Route("/releases/{ref:str}", release_page),
        Route("/audit", audit_page),
        Route("/report", report_page),
        Route("/api/status", api_status),
        Route("/api/report", api_report),
        Route("/api/deployments/{id:int}", api_deployment),
        Route("/api/deployments/{id:int}/events", deployment_events),
        Route("/api/environments/{env:str}/{action:str}", control, methods=["POST"]),
        Route("/api/jobs/{id:int}", job_status),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            site.ledger.close()

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(_ServerTiming)])
    app.state.site = site
    return app


def serve(app: Starlette, *, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``app`` until interrupted."""
    import uvicorn  # noqa: PLC0415 - only the serving command needs the server

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
