// brokerflow workbench pages: the queue (history from the API, live alerts from the edge), an
// alert (its evidence drawn and in words, the workflow), an account, the reports. Each page is a
// function of the session; `document.body.dataset.page` says which one runs.
"use strict";

const FILTERS = ["kind", "status", "severity_min", "account", "owner", "symbol", "assignee",
  "from", "to"];

// =============================================================================================
// The queue
// =============================================================================================

function readFilters() {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const name of FILTERS) {
    const value = (params.get(name) || "").trim();
    if (value) filters[name] = value;
  }
  return filters;
}

// An ISO date or date-time; without a zone it is UTC, as the API reads it.
function utcMs(text) {
  const value = text.trim();
  const zoned = value.length === 10 || /(Z|[+-]\d\d:?\d\d)$/i.test(value) ? value : value + "Z";
  return Date.parse(zoned.replace(" ", "T"));
}

// Whether a live alert belongs in the queue as filtered (the API's rules, on one alert).
function matchesFilters(a, f) {
  const list = (text) => text.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
  if (f.kind && !list(f.kind).includes(a.kind)) return false;
  if (f.status && !list(f.status).includes(a.status)) return false;
  if (f.severity_min && a.score < Number(f.severity_min)) return false;
  for (const name of ["account", "owner", "assignee"]) {
    if (f[name] && a[name] !== f[name]) return false;
  }
  if (f.symbol && (a.symbol || "") !== f.symbol.toUpperCase()) return false;
  const t = Date.parse(a.event_time);
  if (f.from && !(t >= utcMs(f.from))) return false;
  if (f.to && !(t < utcMs(f.to))) return false;
  return true;
}

function queuePage(session) {
  const analyst = session.role === "analyst";
  const form = document.getElementById("filters");
  const tbody = document.querySelector("#alerts tbody");
  const moreButton = document.getElementById("more");
  const selected = new Set();
  let filters = readFilters();
  let cursor = null;
  let counts = null;
  let shown = 0;

  const kindSelect = document.getElementById("f-kind");
  for (const kind of analyst ? [...SURVEILLANCE_KINDS, ...ACCOUNT_KINDS] : ACCOUNT_KINDS) {
    kindSelect.append(el("option", { value: kind }, kind));
  }
  if (!analyst) document.querySelector("#alerts thead th").hidden = true;

  function fillForm() {
    for (const name of FILTERS) {
      const input = form.elements[name];
      const value = filters[name] || "";
      if (input.tagName === "SELECT" && value && ![...input.options].some((o) => o.value === value)) {
        input.append(el("option", { value }, value));   // e.g. kind=SPOOFING,WASH_TRADE from a link
      }
      input.value = value;
    }
  }

  function setFilters(next) {
    filters = next;
    history.pushState(null, "", pageUrl("queue", filters));
    fillForm();
    load();
  }

  function renderCounts() {
    const list = document.getElementById("counts");
    const entries = Object.entries(counts.open_by_kind);
    list.replaceChildren(...entries.map(([kind, n]) => el("li", { dataset: { kind, count: n } },
      el("button", {
        type: "button", "aria-pressed": String(filters.kind === kind),
        title: `show only ${kind}`, onclick: () => {
          const next = { ...filters };
          if (filters.kind === kind) delete next.kind; else next.kind = kind;
          setFilters(next);
        },
      }, kind, el("b", {}, n)))));
    if (!entries.length) list.append(el("li", { class: "muted" }, "no open alerts"));
    document.getElementById("suppressed-count").textContent = counts.suppressed;
  }

  function renderSummary() {
    const live = tbody.querySelectorAll("tr.live").length;
    document.getElementById("queue-summary").textContent =
      `${shown} shown` + (live ? `, ${live} live` : "") + (cursor ? ", more below" : "");
  }

  function updateSelection() {
    document.getElementById("selected-count").textContent = `${selected.size} selected`;
    document.getElementById("bulk-apply").disabled = selected.size === 0;
  }

  function alertRow(a, live) {
    const check = analyst ? el("td", {}, el("input", {
      type: "checkbox", class: "select", "aria-label": `select ${a.kind} alert ${a.alert_id}`,
      checked: selected.has(a.alert_id),
      onchange: (event) => {
        if (event.target.checked) selected.add(a.alert_id); else selected.delete(a.alert_id);
        updateSelection();
      },
    })) : null;
    return el("tr", {
      class: [a.status === "CLOSED" ? "closed" : "", live ? "live" : ""].join(" ").trim() || undefined,
      dataset: { alertId: a.alert_id, kind: a.kind, status: a.status, testid: "alert-row" },
    },
    check,
    el("td", { class: "num score" }, a.score),
    el("td", {}, alertLink(a), live ? [" ", el("span", { class: "badge live" }, "live")] : null,
      a.suppressed_by ? [" ", el("span", { class: "badge", title: a.suppression_reason }, "suppressed")] : null),
    el("td", {}, el("span", { class: `badge ${a.status}` }, a.status)),
    el("td", {}, accountLink(a.account)),
    el("td", {}, a.owner || "–"),
    el("td", {}, a.symbol || "–"),
    el("td", {}, el("time", { datetime: a.event_time }, a.event_time)),
    el("td", {}, a.assignee || "–"),
    el("td", { class: "num" }, a.occurrences ?? 1));
  }

  async function load(append = false) {
    clearError();
    const params = { ...filters };
    if (append && cursor) params.cursor = cursor;
    const page = await guarded(() => api("/api/alerts", { params }));
    if (!page) {
      if (!append) { tbody.replaceChildren(); shown = 0; cursor = null; moreButton.hidden = true; }
      return;
    }
    if (!append) {
      tbody.replaceChildren();
      shown = 0;
      counts = page.counts;
      renderCounts();
    }
    for (const a of page.alerts) tbody.append(alertRow(a, false));
    shown += page.alerts.length;
    cursor = page.next_cursor;
    moreButton.hidden = !cursor;
    document.body.dataset.loaded = "queue";
    renderSummary();
  }

  // A live alert from the edge: on top, marked live, when the filters would show it.
  function addLive(frame) {
    const a = {
      alert_id: frame.alert_id, kind: frame.kind, severity: frame.severity,
      score: scoreOf(frame.severity), status: frame.status || "OPEN", account: frame.account,
      owner: frame.owner, symbol: frame.symbol, event_time: isoOfMs(frame.event_time),
      assignee: null, occurrences: 1,
    };
    const existing = tbody.querySelector(`tr[data-alert-id="${CSS.escape(a.alert_id)}"]`);
    if (existing) {                         // an episode continued: the row is there already
      existing.classList.add("live");
      return;
    }
    if (!matchesFilters({ ...a, kind: a.kind }, { ...filters, kind: undefined, status: undefined })) return;
    if (counts && a.status !== "CLOSED") {   // the counts break down by kind, whatever the kind filter
      counts.open_by_kind[a.kind] = (counts.open_by_kind[a.kind] || 0) + 1;
      renderCounts();
    }
    if (!matchesFilters(a, filters)) return;
    tbody.prepend(alertRow(a, true));
    shown += 1;
    renderSummary();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = {};
    for (const name of FILTERS) {
      const value = String(form.elements[name].value || "").trim();
      if (value) next[name] = value;
    }
    setFilters(next);
  });
  document.getElementById("clear-filters").addEventListener("click", () => setFilters({}));
  moreButton.addEventListener("click", () => load(true));
  window.addEventListener("popstate", () => { filters = readFilters(); fillForm(); load(); });
  document.getElementById("select-all").addEventListener("change", (event) => {
    for (const box of tbody.querySelectorAll("input.select")) {
      box.checked = event.target.checked;
      const id = box.closest("tr").dataset.alertId;
      if (box.checked) selected.add(id); else selected.delete(id);
    }
    updateSelection();
  });
  document.getElementById("bulk").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const body = {
      alert_ids: [...selected], action: document.getElementById("bulk-action").value,
      assignee: document.getElementById("bulk-assignee").value.trim() || null,
      disposition: document.getElementById("bulk-disposition").value || null,
      note: document.getElementById("bulk-note").value.trim() || null,
    };
    const done = await guarded(() => api("/api/alerts/actions", { method: "POST", body }));
    if (!done) return;
    const failed = done.results.filter((r) => r.error);
    showNotice("bulk-result", `${body.action}: applied to ${done.applied} of ${done.results.length}` +
      (failed.length ? "; " + failed.map((r) => `${r.alert_id}: ${r.error}`).join("; ") : ""));
    selected.clear();
    document.getElementById("select-all").checked = false;
    updateSelection();
    await load();
  });

  fillForm();
  load();
  connectLive(session, addLive);
}

// The edge's WebSocket: alerts as they are raised. On a reconnect the edge replays what was
// missed after the last alert seen (`last_alert_id`).
function connectLive(session, onAlert) {
  const status = document.getElementById("live-status");
  const setStatus = (state, text) => { status.dataset.state = state; status.textContent = text; status.className = "live-status " + state; };
  const base = session.edge_url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:8765/ws`;
  let lastAlertId = null;
  let backoffMs = 500;
  function open() {
    setStatus("connecting", "live: connecting…");
    let url = `${base}?token=${encodeURIComponent(TOKEN)}`;
    if (lastAlertId) url += `&last_alert_id=${encodeURIComponent(lastAlertId)}`;
    let socket;
    try { socket = new WebSocket(url); } catch (exc) { setStatus("down", "live: off (" + exc.message + ")"); return; }
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") { setStatus("live", "live"); backoffMs = 500; }
      else if (frame.type === "alert") {
        lastAlertId = frame.stream_id || frame.alert_id;
        onAlert(frame);
      }
    };
    socket.onclose = (event) => {
      if (event.code === 4401 || event.code === 4403) { setStatus("down", `live: off (${event.reason || event.code})`); return; }
      setStatus("down", `live: reconnecting (${event.code})`);
      setTimeout(open, backoffMs);
      backoffMs = Math.min(backoffMs * 2, 10000);
    };
  }
  open();
}

// =============================================================================================
// An alert
// =============================================================================================

const BUY = "#1b873f";
const SELL = "#c62828";
const MARKER_OF = {
  ORDER_PLACED: "placed", ORDER_ACCEPTED: "placed", ORDER_MODIFIED: "modified",
  ORDER_CANCELLED: "cancelled", ORDER_EXPIRED: "cancelled", ORDER_REJECTED: "cancelled",
  ORDER_DONE_FOR_DAY: "cancelled", ORDER_FILLED: "filled",
};

// The orders and fills the evidence names: by ExecID (17), and every event of an order whose
// ClOrdID (11) or OrigClOrdID (41) it names, found by OrderID (37) through replaces.
function namedEvents(events, explanation) {
  const execIds = new Set(explanation.exec_ids || []);
  const clOrdIds = new Set(explanation.cl_ord_ids || []);
  const orders = new Set(events.filter((e) => clOrdIds.has(e.cl_ord_id) || clOrdIds.has(e.orig_cl_ord_id))
    .map((e) => e.order_id).filter(Boolean));
  return new Set(events.filter((e) => execIds.has(e.exec_id) || clOrdIds.has(e.cl_ord_id) ||
    clOrdIds.has(e.orig_cl_ord_id) || orders.has(e.order_id)).map((e) => e.event_id));
}

function chartMarkers(events, named) {
  const lastPrice = new Map();    // order_id -> its latest limit price, for cancels without one
  const markers = [];
  for (const e of events) {
    if (e.price !== null && e.price !== undefined && e.price !== 0) lastPrice.set(e.order_id, e.price);
    const kind = MARKER_OF[e.event_type];
    if (!kind) continue;
    const price = kind === "filled" ? (e.last_px || e.price) : (e.price || lastPrice.get(e.order_id));
    if (price === null || price === undefined || price === 0) continue;
    markers.push({ t: e.t, price: Number(price), kind, buy: e.side === "1", named: named.has(e.event_id) });
  }
  return markers;
}

function drawMarker(ctx, m, x, y, r) {
  const colour = m.buy ? BUY : SELL;
  ctx.globalAlpha = m.named ? 1 : 0.5;
  ctx.fillStyle = colour;
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2 * devicePixelRatio;
  ctx.beginPath();
  if (m.kind === "placed") {
    const dir = m.buy ? -1 : 1;                    // ▲ buy, ▼ sell
    ctx.moveTo(x, y + dir * r);
    ctx.lineTo(x - r, y - dir * r * 0.8);
    ctx.lineTo(x + r, y - dir * r * 0.8);
    ctx.closePath();
    ctx.fill();
  } else if (m.kind === "modified") {
    ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y);
    ctx.closePath();
    ctx.stroke();
  } else if (m.kind === "cancelled") {
    ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r);
    ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r);
    ctx.stroke();
  } else {
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (m.named && (m.kind === "placed" || m.kind === "filled")) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 1.2 * devicePixelRatio;
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
}

function drawChart(container, chart, explanation) {
  const from = chart.from_ms / 1000;
  const to = chart.to_ms / 1000;
  const ticks = chart.ticks;
  let data = [ticks.t.map((t) => t / 1000), ticks.ltp, ticks.bid, ticks.ask, ticks.volume];
  if (!data[0].length) data = [[from, to], [null, null], [null, null], [null, null], [null, null]];
  const shaded = chart.band;   // the model's look-back window (marking the close's last 30 min)
  const markers = chartMarkers(chart.events, namedEvents(chart.events, explanation));
  const prices = [...data[1], ...data[2], ...data[3], ...markers.map((m) => m.price)]
    .filter((v) => v !== null && v !== undefined && Number.isFinite(Number(v))).map(Number);
  let lo = prices.length ? Math.min(...prices) : 0;
  let hi = prices.length ? Math.max(...prices) : 1;
  const pad = hi > lo ? (hi - lo) * 0.1 : Math.max(Math.abs(hi) * 0.01, 0.01);
  lo -= pad;
  hi += pad;
  const utc = (v) => (v === null || v === undefined ? "–" : new Date(v * 1000).toISOString());
  const opts = {
    width: Math.max(360, container.clientWidth || 900),
    height: 340,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    scales: { x: { time: true, range: () => [from, to] }, y: { range: () => [lo, hi] }, vol: {} },
    series: [
      { label: "time (UTC)", value: (u, v) => utc(v) },
      { label: "last", stroke: "#1565c0", width: 1.5, spanGaps: true },
      { label: "bid", stroke: "#90a4ae", width: 1, spanGaps: true },
      { label: "ask", stroke: "#90a4ae", width: 1, dash: [4, 3], spanGaps: true },
      // The symbol's volume so far today (right axis): a pump's buys against the day's volume.
      { label: "day volume", scale: "vol", stroke: "#8d6e63", width: 1, spanGaps: true,
        value: (u, v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")) },
    ],
    axes: [
      { label: `UTC, ${new Date(chart.from_ms).toISOString().slice(0, 10)}`,
        values: (u, splits) => splits.map((v) => new Date(v * 1000).toISOString().slice(11, 19)) },
      { label: "price" },
      { scale: "vol", side: 1, label: "day volume", grid: { show: false } },
    ],
    hooks: {
      draw: [(u) => {
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        if (shaded) {
          const x0 = u.valToPos(shaded.from_ms / 1000, "x", true);
          const x1 = u.valToPos(shaded.to_ms / 1000, "x", true);
          ctx.fillStyle = "rgba(255, 193, 7, 0.15)";
          ctx.fillRect(x0, top, x1 - x0, height);
          container.dataset.band = `${shaded.minutes} min`;
        }
        let drawn = 0;
        let emphasised = 0;
        for (const m of markers) {
          const x = u.valToPos(m.t / 1000, "x", true);
          const y = u.valToPos(m.price, "y", true);
          if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
          drawMarker(ctx, m, x, y, (m.named ? 7 : 5) * devicePixelRatio);
          drawn += 1;
          if (m.named) emphasised += 1;
        }
        ctx.restore();
        container.dataset.markers = drawn;
        container.dataset.emphasised = emphasised;
      }],
    },
  };
  container.replaceChildren();
  container.dataset.ticks = ticks.t.length;
  const plot = new uPlot(opts, data, container);
  const note = [];
  if (!ticks.t.length) note.push("no market ticks recorded for this symbol in the window: the axes and the orders only");
  if (!chart.events.length) note.push("no orders of the account in the window");
  if (shaded) note.push(`shaded: the model's window, the ${shaded.minutes} minutes up to the alert`);
  document.getElementById("chart-note").textContent = note.join("; ");
  return plot;
}

function factList(node, pairs) {
  node.replaceChildren(...pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [
    el("dt", {}, k), el("dd", {}, v === null || v === "" ? "–" : v),
  ]));
}

function nextDay(isoDay) {
  const d = new Date(isoDay + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function renderAlertSummary(a) {
  const title = document.getElementById("alert-title");
  title.replaceChildren(a.kind, " ", el("span", { class: `badge ${a.status}`, dataset: { testid: "status" } }, a.status));
  document.title = `${a.kind} ${a.account || a.owner || ""} · brokerflow workbench`;
  const day = (a.event_time || "").slice(0, 10);
  const account = a.account ? el("a", {
    href: pageUrl("account", { account: a.account, from: day, to: day ? nextDay(day) : "" }),
    dataset: { testid: "account-link" },
  }, a.account) : "–";
  const occurrences = Object.keys((a.details || {}).occurrences || {}).length || 1;
  factList(document.getElementById("summary"), [
    ["score", `${a.score} (severity ${a.severity})`], ["account", account], ["owner", a.owner],
    ["symbol", a.symbol], ["event time (UTC)", a.event_time], ["occurrences", occurrences],
    ["assignee", a.assignee], ["disposition", a.disposition], ["note", a.note],
    ["closed", a.closed_by ? `by ${a.closed_by} at ${a.closed_at}` : null],
    ["acknowledged at", a.acked_at], ["raised at", a.created_at], ["updated at", a.updated_at],
    ["suppressed", a.suppressed_by ? `rule ${a.suppressed_by}: ${a.suppression_reason}` : undefined],
  ]);
  document.getElementById("history").replaceChildren(a.history.length ? dataTable(
    ["at", "actor", "action", "change", "assignee", "disposition", "note"],
    a.history.map((h) => ({ ...h, change: h.from_status === h.to_status ? h.to_status : `${h.from_status} → ${h.to_status}` })),
    { testid: "history-table", rowAttrs: (h) => ({ dataset: { action: h.action, actor: h.actor } }) },
  ) : el("p", { class: "muted" }, "no decisions yet"));
  for (const button of document.querySelectorAll("#workflow button")) {
    button.disabled = a.status === "CLOSED";
  }
  document.getElementById("act-ack").disabled = a.status !== "OPEN";
}

async function showAudit(eventId) {
  clearError();
  const row = await guarded(() => api(`/api/audit/${encodeURIComponent(eventId)}`));
  if (!row) return;
  const pretty = (text, empty) => {
    if (!text || text === "{}") return empty;
    try { return JSON.stringify(JSON.parse(text), null, 1); } catch { return text; }
  };
  factList(document.getElementById("audit-facts"), [
    ["event", `${row.event_type} (${row.event_id})`], ["time (UTC)", row.timestamp],
    ["account", row.account], ["symbol", row.symbol], ["side", sideName(row.side)],
    ["ClOrdID / OrigClOrdID", `${row.cl_ord_id || "–"} / ${row.orig_cl_ord_id || "–"}`],
    ["OrderID / ExecID", `${row.order_id || "–"} / ${row.exec_id || "–"}`],
    ["source", row.source],
  ]);
  document.getElementById("audit-fix").textContent = (row.raw_fix || "(no raw message)").replaceAll("\x01", "|");
  document.getElementById("audit-snapshot").textContent = pretty(row.market_snapshot, "(no market snapshot recorded)");
  document.getElementById("audit-details").textContent = pretty(row.order_details, "–");
  document.getElementById("audit-dialog").showModal();
}

function renderOrders(chart, explanation) {
  const node = document.getElementById("orders");
  if (!chart) { node.replaceChildren(el("p", { class: "muted" }, "the console has no ClickHouse store: no orders or chart")); return; }
  if (!chart.events.length) { node.replaceChildren(el("p", { class: "muted" }, "no orders of the account in the chart's window")); return; }
  const named = namedEvents(chart.events, explanation);
  const columns = ["time (UTC)", "event", "side", "quantity", "price", "last_qty", "last_px",
    "cl_ord_id", "orig_cl_ord_id", "order_id", "exec_id", "audit"];
  const rows = chart.events.map((e) => ({ ...e, "time (UTC)": isoOfMs(e.t), event: e.event_type }));
  node.replaceChildren(dataTable(columns, rows, {
    testid: "orders-table",
    rowAttrs: (e) => ({ class: named.has(e.event_id) ? "named" : undefined, dataset: { eventId: e.event_id, eventType: e.event_type } }),
    render: {
      side: (v) => el("span", { class: `side-${sideName(v)}` }, sideName(v)),
      audit: (v, e) => el("button", {
        type: "button", dataset: { testid: "audit-button" },
        "aria-label": `audit trail of ${e.event_type} ${e.exec_id || e.cl_ord_id}`,
        onclick: () => showAudit(e.event_id),
      }, "audit"),
    },
  }));
}

async function alertPage(session) {
  const id = new URLSearchParams(location.search).get("id");
  if (!id) { showError("no alert id: open alert.html?id=…"); return; }
  const load = () => api(`/api/alerts/${encodeURIComponent(id)}`);
  const a = await guarded(load);
  if (!a) return;
  document.getElementById("alert-view").hidden = false;
  const ex = a.explanation;
  document.getElementById("headline").textContent = ex.headline;
  document.getElementById("findings").replaceChildren(...ex.findings.map((f) => el("li", {}, f)));
  factList(document.getElementById("fields"), ex.fields.map(([k, v]) => [k, v]));
  document.getElementById("details-json").textContent = JSON.stringify(a.details, null, 1);
  renderAlertSummary(a);
  renderOrders(a.chart, ex);
  if (a.chart) drawChart(document.getElementById("chart"), a.chart, ex);
  else document.getElementById("chart-note").textContent = "the console has no ClickHouse store: no chart";
  document.body.dataset.loaded = "alert";

  document.getElementById("workflow").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    clearError();
    showNotice("action-result", "");
    const action = button.dataset.action;
    const body = { action, note: document.getElementById("note").value.trim() || null };
    if (action === "assign" || action === "escalate") {
      body.assignee = document.getElementById("assignee").value.trim() || null;
    }
    if (action === "close") body.disposition = document.getElementById("disposition").value || null;
    const done = await guarded(() => api(`/api/alerts/${encodeURIComponent(id)}/actions`, { method: "POST", body }));
    if (done) {
      showNotice("action-result", `${done.action} by ${done.actor} at ${done.at}: ${done.from_status} → ${done.status}` +
        (done.audited ? " (in the audit trail)" : " (the audit trail copy failed)"));
      document.getElementById("note").value = "";
    }
    const fresh = await guarded(load);     // after a 409 too: the page shows who closed it
    if (fresh) renderAlertSummary(fresh);
  });
}

// =============================================================================================
// An account
// =============================================================================================

async function accountPage(session) {
  const params = new URLSearchParams(location.search);
  const account = (params.get("account") || "").trim();
  const period = { from: params.get("from") || "", to: params.get("to") || "" };
  const form = document.getElementById("period");
  form.elements.account.value = account;
  form.elements.from.value = period.from;
  form.elements.to.value = period.to;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.search = new URLSearchParams(Object.fromEntries([...new FormData(form)]
      .filter(([, v]) => String(v).trim()))).toString();
  });
  if (!account) { showError("no account: open account.html?account=…"); return; }
  const view = await guarded(() => api(`/api/accounts/${encodeURIComponent(account)}`, { params: period }));
  if (!view) return;
  document.getElementById("account-view").hidden = false;
  const s = view.account;
  document.getElementById("account-title").textContent = `Account ${s.account} (${s.owner || "no owner"})`;
  factList(document.getElementById("account-summary"), [
    ["owner", s.owner], ["cash", s.cash], ["equity", s.equity], ["gross value", s.gross_value],
    ["initial / maintenance margin", `${s.initial_margin} / ${s.maintenance_margin}`],
    ["margin ratio", s.margin_ratio], ["margin state", s.margin_state],
    ["margin as of (UTC)", s.margin_at], ["margin call since", s.call_since],
  ]);
  document.getElementById("account-period").textContent = `orders, fills and alerts from ${view.from} to ${view.to} (UTC)`;
  const side = { side: (v) => el("span", { class: `side-${sideName(v)}` }, `${v} (${sideName(v)})`) };
  for (const name of ["holdings", "orders", "fills"]) {
    const table = view[name];
    const node = document.getElementById(name);
    node.replaceChildren(
      el("div", { class: "table-tools" }, el("span", { class: "muted" }, `${table.rows.length} rows`),
        csvButton(`${s.account}-${name}.csv`, table.columns, table.rows, `csv-${name}`)),
      table.rows.length ? dataTable(table.columns, table.rows, { testid: `${name}-table`, render: side })
        : el("p", { class: "muted" }, "none"));
  }
  const alertColumns = ["score", "kind", "status", "symbol", "event_time", "assignee", "disposition"];
  document.getElementById("account-alerts").replaceChildren(view.alerts.length
    ? dataTable(alertColumns, view.alerts, {
      testid: "account-alerts-table",
      render: { kind: (v, a) => alertLink(a), status: (v) => el("span", { class: `badge ${v}` }, v) },
    }) : el("p", { class: "muted" }, "no alerts this token may see in the period"));
  document.body.dataset.loaded = "account";
}

// =============================================================================================
// The reports
// =============================================================================================

function reportForm(report) {
  const result = el("div", { class: "report-result", dataset: { testid: "report-result" } });
  const csvLink = el("a", { class: "button", dataset: { testid: "csv-link" }, download: `${report.name}.csv` }, "CSV");
  const inputs = report.params.map((p) => {
    const id = `${report.name}-${p.name}`;
    return el("div", { class: "field" }, el("label", { for: id }, p.name),
      el("input", { id, name: p.name, required: true, size: 22, "aria-describedby": id + "-hint" }),
      el("small", { id: id + "-hint", class: "muted" }, p.doc));
  });
  const form = el("form", { class: "filters", dataset: { report: report.name } }, inputs,
    el("button", { type: "submit", class: "primary" }, "Run"), csvLink);
  const values = () => Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]));
  const updateLink = () => {
    const qs = new URLSearchParams({ ...values(), format: "csv", token: TOKEN });
    csvLink.href = `/api/reports/${encodeURIComponent(report.name)}?${qs}`;
  };
  form.addEventListener("input", updateLink);
  updateLink();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const out = await guarded(() => api(`/api/reports/${encodeURIComponent(report.name)}`,
      { params: { ...values(), format: "json" } }));
    if (!out) { result.replaceChildren(); return; }
    result.replaceChildren(
      el("p", { class: "muted" }, `${out.rows.length} rows`),
      out.rows.length ? dataTable(out.columns, out.rows, { testid: "report-table" }) : el("p", {}, "no rows"));
  });
  return el("div", { class: "report", dataset: { testid: "report", name: report.name } },
    el("h2", {}, report.name), el("p", {}, report.description), form, result);
}

async function reportsPage(session) {
  const listed = await guarded(() => api("/api/reports"));
  if (!listed) return;
  document.getElementById("reports").replaceChildren(...listed.reports.map(reportForm));
  document.body.dataset.loaded = "reports";
}

// =============================================================================================

const PAGES = { queue: queuePage, alert: alertPage, account: accountPage, reports: reportsPage };

(async () => {
  const session = await startPage();
  if (session) await PAGES[document.body.dataset.page](session);
})();
