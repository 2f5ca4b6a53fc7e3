"""Console layer: the workbench's HTTP API (FastAPI) and its pages, one ASGI app.

Every `/api/` route takes the edge's token (`Authorization: Bearer …` or `?token=`): 401 when
it is missing or bad, 403 when its role may not see the thing (`console.access`). Errors are
`{"error": "one line"}`; a bad filter, an unknown id or a close without a disposition is a 400 or
a 404 with the reason, a close that lost the race a 409 naming who closed it.

Reads go to PostgreSQL (alerts, accounts: the record) and ClickHouse (the chart's market and
orders, the audit trail, the named reports). The pages are static files (no build step); they
call this API and open the edge's WebSocket for live alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from console import access, evidence, queries, reports, workflow
from console.filters import BadRequest, parse_alert_filter, parse_time
from console.reports import ReportError
from console.tables import csv_text, records
from domain.errors import BrokerflowError
from domain.triage import ActionRefused, ActionRequest, AlreadyClosed
from edge.claims import Claims, TokenError
from edge.tokens import read_token

log = logging.getLogger("brokerflow.console")

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "edge" / "static"  # uPlot, shared


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the console reads and how it checks tokens.

    Attributes:
        postgres_dsn: the record (alerts, accounts, orders, executions).
        secret: the HS256 key of edge tokens.
        clickhouse: a `sinks.clickhouse.ClickHouseStore` (chdb or a server) for the chart, the
            audit trail and the reports; None leaves them out (the pages say so).
        edge_url: the WebSocket edge the pages open for live alerts (`ws://host:port/ws`);
            None: the page derives it from its own host and port 8765.
        reports_dir: the named reports (default `sql/reports`).
    """

    postgres_dsn: str
    secret: bytes
    clickhouse: Any = None
    edge_url: str | None = None
    reports_dir: Path | None = None


class ActionBody(BaseModel):
    """A workflow action on one alert."""

    action: str = Field(description="ack | assign | escalate | close")
    assignee: str | None = Field(None, description="assign (and optionally escalate): to whom")
    disposition: str | None = Field(
        None, description="close: false_positive | true_positive | reported"
    )
    note: str | None = Field(None, description="why; kept in the alert's history")


class BulkActionBody(ActionBody):
    """The same action on several alerts (each applied and answered on its own)."""

    alert_ids: list[str] = Field(description="the alerts, at most 500")


class SuppressionBody(BaseModel):
    """A rule that takes an account's alerts out of the open queue for a time."""

    account: str
    kind: str | None = Field(None, description="one alert kind; omitted: every kind")
    reason: str
    starts_at: str = Field(description="ISO 8601")
    ends_at: str = Field(description="ISO 8601, after starts_at; at most 90 days later")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(config: ConsoleConfig) -> FastAPI:
    """The console's ASGI app over `config`'s stores."""
    pool = ConnectionPool(
        config.postgres_dsn, min_size=1, max_size=8, open=False, kwargs={"autocommit": True}
    )
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=True, timeout=30)
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(
        lifespan=lifespan,
        title="brokerflow console",
        summary="Alerts, accounts and reports for surveillance and compliance analysts.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    audit = workflow.clickhouse_audit(config.clickhouse) if config.clickhouse else None

    @contextmanager
    def pg() -> Iterator[psycopg.Connection]:
        with pool.connection() as conn:
            yield conn

    def claims_of(request: Request) -> Claims:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.query_params.get("token")
        return read_token(config.secret, token, time.time())

    # -- errors: one line each ------------------------------------------------------------

    @app.exception_handler(TokenError)
    def _unauthorised(_: Request, exc: TokenError) -> JSONResponse:
        return _error(401, f"unauthorised: {exc}")

    @app.exception_handler(access.Forbidden)
    def _forbidden(_: Request, exc: access.Forbidden) -> JSONResponse:
        return _error(403, f"forbidden: {exc}")

    @app.exception_handler(workflow.NotFound)
    def _not_found(_: Request, exc: workflow.NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(AlreadyClosed)
    def _conflict(_: Request, exc: AlreadyClosed) -> JSONResponse:
        return _error(409, str(exc), closed_by=exc.closed_by, closed_at=exc.closed_at)

    # An unknown alert id is bad input to the queue's workflow (the issue asks for a 400).
    for bad in (BadRequest, ActionRefused, ReportError, workflow.AlertNotFound):
        app.add_exception_handler(bad, lambda _, exc: _error(400, str(exc)))

    @app.exception_handler(Exception)
    def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("console request failed")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])

    @app.exception_handler(BrokerflowError)
    def _store_error(_: Request, exc: BrokerflowError) -> JSONResponse:
        log.error("console request failed: %s", exc)
        return _error(502, f"a store failed: {exc}")

    # -- API ------------------------------------------------------------------------------

    @app.get("/api/session", summary="Who the token is, and where the live feed is")
    def session(request: Request) -> dict[str, Any]:
        claims = claims_of(request)
        return {
            "user": claims.user, "role": claims.role, "accounts": sorted(claims.accounts),
            "edge_url": config.edge_url, "clickhouse": config.clickhouse is not None,
        }  # fmt: skip

    @app.get("/api/alerts", summary="The alert queue: open first by score, with counts")
    def list_alerts(
        request: Request,
        kind: Annotated[str | None, Query(description="kinds, comma-separated")] = None,
        status: Annotated[str | None, Query(description="OPEN,ACKED,ESCALATED,CLOSED")] = None,
        severity_min: Annotated[str | None, Query(description="lowest score, 0-100")] = None,
        account: str | None = None,
        owner: str | None = None,
        symbol: str | None = None,
        assignee: str | None = None,
        from_: Annotated[str | None, Query(alias="from", description="ISO 8601")] = None,
        to: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
        limit: Annotated[str | None, Query(description="1-500, default 50")] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None,
        sort: Annotated[str | None, Query(description="priority (default) or time")] = None,
        suppressed: Annotated[str | None, Query(description="exclude|include|only")] = None,
    ) -> dict[str, Any]:
        claims = claims_of(request)
        scope = access.alert_scope(claims)
        f = parse_alert_filter(dict(request.query_params))
        for k in f.kinds:
            access.check_kind_visible(claims, k)
        with pg() as conn:
            return queries.list_alerts(conn, scope, f)

    @app.get("/api/alerts/{alert_id}", summary="One alert: evidence in words, chart, history")
    def get_alert(request: Request, alert_id: str) -> dict[str, Any]:
        claims = claims_of(request)
        scope = access.alert_scope(claims)
        with pg() as conn:
            alert = queries.get_alert(conn, alert_id)
            if not scope.allows(alert["kind"], alert["account"]):
                access.check_kind_visible(claims, alert["kind"])
                msg = "this alert is not about one of this token's accounts"
                raise access.Forbidden(msg)
            alert["history"] = workflow.history(conn, alert_id)
        alert["explanation"] = explain_alert(alert)
        alert["chart"] = None
        if config.clickhouse is not None:
            event_ns = _ns_of(alert["event_time"])
            alert["chart"] = evidence.chart_data(config.clickhouse, alert, event_ns)
        return alert

    @app.post("/api/alerts/{alert_id}/actions", summary="Acknowledge, assign, escalate, close")
    def act(request: Request, alert_id: str, body: Annotated[ActionBody, Body()]) -> Any:
        claims = claims_of(request)
        access.check_analyst(claims, "the alert workflow")
        with pg() as conn:
            result = workflow.apply_action(
                conn, alert_id,
                ActionRequest(body.action, claims.user, body.assignee, body.disposition,
                              body.note),
                audit,
            )  # fmt: skip
        return result.to_json()

    @app.post("/api/alerts/actions", summary="One action on several alerts")
    def act_many(request: Request, body: Annotated[BulkActionBody, Body()]) -> dict[str, Any]:
        claims = claims_of(request)
        access.check_analyst(claims, "the alert workflow")
        if not body.alert_ids or len(body.alert_ids) > 500:
            msg = "alert_ids: give 1 to 500 alert ids"
            raise BadRequest(msg)
        results: list[dict[str, Any]] = []
        with pg() as conn:
            for alert_id in dict.fromkeys(body.alert_ids):
                request_ = ActionRequest(body.action, claims.user, body.assignee,
                                         body.disposition, body.note)  # fmt: skip
                try:
                    done = workflow.apply_action(conn, alert_id, request_, audit)
                except (ActionRefused, AlreadyClosed, workflow.AlertNotFound) as exc:
                    results.append({"alert_id": alert_id, "error": str(exc)})
                else:
                    results.append(done.to_json())
        return {"results": results, "applied": sum("error" not in r for r in results)}

    @app.get("/api/accounts/{account}", summary="An account: holdings, orders, fills, alerts")
    def account_view(
        request: Request,
        account: str,
        from_: Annotated[str | None, Query(alias="from", description="ISO 8601")] = None,
        to: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    ) -> dict[str, Any]:
        claims = claims_of(request)
        access.check_account(claims, account)
        scope = access.alert_scope(claims)
        since = parse_time("from", from_) if from_ else None
        until = parse_time("to", to) if to else None
        with pg() as conn:
            return queries.account_view(conn, scope, account, since, until)

    @app.get("/api/reports", summary="The named reports and their parameters")
    def list_reports(request: Request) -> dict[str, Any]:
        access.check_analyst(claims_of(request), "the compliance reports")
        return {"reports": [
            {"name": r.name, "description": r.description,
             "params": [{"name": k, "doc": v} for k, v in r.params.items()]}
            for r in reports.load_reports(config.reports_dir).values()
        ]}  # fmt: skip

    @app.get("/api/reports/{name}", summary="Run a report: ?param=value…&format=json|csv")
    def run_report(request: Request, name: str, format: str = "json") -> Any:  # noqa: A002
        access.check_analyst(claims_of(request), "the compliance reports")
        if format not in ("json", "csv"):
            msg = f"format: unknown value {format!r} (json or csv)"
            raise BadRequest(msg)
        params = {k: v for k, v in request.query_params.items() if k not in ("format", "token")}
        catalogue = reports.load_reports(config.reports_dir)
        report = catalogue.get(name)
        if report is None:
            msg = f"no report named {name!r} (known: {', '.join(catalogue) or 'none'})"
            raise workflow.NotFound(msg)
        bound = reports.bind_params(report, params)
        if config.clickhouse is None:
            msg = "the console has no ClickHouse store: reports are unavailable"
            raise BrokerflowError(msg)
        columns, rows = config.clickhouse.query(report.sql, bound, readonly=True)
        if format == "csv":
            return PlainTextResponse(
                csv_text(columns, rows), media_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )  # fmt: skip
        return {"report": name, "params": bound, "columns": columns,
                "rows": records(columns, rows)}  # fmt: skip

    @app.get("/api/audit/{event_id}", summary="One audit-trail row: raw FIX and snapshot")
    def audit_event(request: Request, event_id: str) -> dict[str, Any]:
        access.check_analyst(claims_of(request), "the audit trail")
        if config.clickhouse is None:
            msg = "the console has no ClickHouse store: the audit trail is unavailable"
            raise BrokerflowError(msg)
        row = evidence.audit_row(config.clickhouse, event_id)
        if row is None:
            msg = f"no audit event with id {event_id!r}"
            raise workflow.NotFound(msg)
        return row

    @app.get("/api/suppressions", summary="Suppression rules, newest first")
    def list_suppressions(request: Request) -> dict[str, Any]:
        access.check_analyst(claims_of(request), "suppression rules")
        with pg() as conn:
            return {"suppressions": workflow.list_suppressions(conn)}

    @app.post("/api/suppressions", summary="Suppress an account's alerts for a period")
    def add_suppression(request: Request, body: Annotated[SuppressionBody, Body()]) -> Any:
        claims = claims_of(request)
        access.check_analyst(claims, "suppression rules")
        with pg() as conn:
            return workflow.add_suppression(
                conn, claims.user, body.account, body.kind, body.reason,
                parse_time("starts_at", body.starts_at), parse_time("ends_at", body.ends_at),
                audit,
            )  # fmt: skip

    @app.post("/api/suppressions/{rule_id}/revoke", summary="End a suppression rule now")
    def revoke_suppression(request: Request, rule_id: int) -> Any:
        claims = claims_of(request)
        access.check_analyst(claims, "suppression rules")
        with pg() as conn:
            return workflow.revoke_suppression(conn, claims.user, rule_id, audit)

    # -- pages ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/queue.html")

    for page in ("queue", "alert", "account", "reports"):
        app.add_api_route(f"/{page}.html", _page(page), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/vendor", StaticFiles(directory=VENDOR_DIR), name="vendor")
    return app


def _page(name: str) -> Callable[[], FileResponse]:
    def serve() -> FileResponse:
        return FileResponse(STATIC_DIR / f"{name}.html", headers={"Cache-Control": "no-cache"})

    return serve


def _ns_of(iso_time: str) -> int:
    return int(parse_time("event_time", iso_time).timestamp() * 1_000) * 1_000_000


def explain_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """The evidence in words (`domain.explain`), as JSON."""
    from domain.explain import explain

    text = explain(alert["kind"], alert.get("details") or {}, account=alert.get("account"),
                   symbol=alert.get("symbol"), owner=alert.get("owner"))  # fmt: skip
    return {
        "headline": text.headline,
        "findings": list(text.findings),
        "fields": [[label, value] for label, value in text.fields],
        "exec_ids": list(text.exec_ids),
        "cl_ord_ids": list(text.cl_ord_ids),
    }
