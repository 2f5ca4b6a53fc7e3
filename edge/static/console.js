// brokerflow web console: quote board (watchlist), live alert feed with evidence, charts
// (alerts by kind per minute, messages/s) and the flows' health (operators); a trader's panels
// are in trader.js and the files it names. No build step.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const board = document.querySelector("#board tbody");
const alertList = document.querySelector("#alerts");
const statusEl = document.getElementById("status");
const rows = new Map();           // symbol -> {row, cells, last}
const subscribed = new Set();
const SURVEILLANCE = new Set(["WASH_TRADE", "PUMP_AND_DUMP", "SPOOFING", "MARKING_THE_CLOSE",
  "EXCESSIVE_OTR", "OWNERSHIP_MISSING"]);
const CURSOR_KEY = "brokerflow.lastAlert." + token.slice(-16);
let ws = null;
let backoffMs = 500;
let messagesThisSecond = 0;
let alertCount = 0;

function fmt(x, digits) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function setStatus(text, cls) {
  statusEl.textContent = text;
  statusEl.className = "status " + cls;
}

function ensureRow(symbol) {
  let entry = rows.get(symbol);
  if (entry) return entry;
  const row = document.createElement("tr");
  row.id = "q-" + symbol;
  row.dataset.symbol = symbol;
  const cells = {};
  for (const name of ["symbol", "bid", "ask", "ltp", "change", "change_pct", "volume", "seq", "time"]) {
    const td = document.createElement("td");
    td.className = name;
    if (name === "symbol") td.textContent = symbol;
    row.appendChild(td);
    cells[name] = td;
  }
  const remove = document.createElement("button");
  remove.className = "remove";
  remove.textContent = "×";
  remove.title = "unsubscribe";
  remove.onclick = () => { unsubscribe([symbol]); send({ action: "watch.remove", symbols: [symbol] }); };
  const td = document.createElement("td");
  td.appendChild(remove);
  row.appendChild(td);
  board.appendChild(row);
  MarketStatus.flag(row, symbol);  // halted? (market-status.js)
  entry = { row, cells, last: null };
  rows.set(symbol, entry);
  return entry;
}

function showQuote(q, isSnapshot) {
  const entry = ensureRow(q.symbol);
  const c = entry.cells;
  const prev = entry.last;
  if (prev && q.seq <= prev.seq) return;           // older than what is shown
  // A gap in seq means updates were conflated (or lost): flag it, the value is still the latest.
  entry.row.classList.toggle("gap", !isSnapshot && prev !== null && q.seq > prev.seq + 1);
  c.bid.textContent = fmt(q.bid, 2);
  c.ask.textContent = fmt(q.ask, 2);
  c.ltp.textContent = fmt(q.ltp, 2);
  c.ltp.className = "ltp" + (prev && q.ltp > prev.ltp ? " up" : prev && q.ltp < prev.ltp ? " down" : "");
  // Change against the previous close: null before the day's first trade or without a close.
  const dir = q.change > 0 ? " up" : q.change < 0 ? " down" : "";
  c.change.textContent = q.change === null || q.change === undefined ? "–"
    : (q.change > 0 ? "+" : "") + fmt(q.change, 2);
  c.change.className = "change" + dir;
  c.change_pct.textContent = q.change_pct === null || q.change_pct === undefined ? "–"
    : (q.change_pct > 0 ? "+" : "") + fmt(q.change_pct, 2) + " %";
  c.change_pct.className = "change_pct" + dir;
  c.volume.textContent = q.volume === null ? "–" : Math.round(q.volume).toLocaleString();
  c.seq.textContent = q.seq;
  c.time.textContent = q.ts ? new Date(q.ts).toISOString().slice(11, 23) : "–";
  entry.last = q;
}

function showAlert(a) {
  alertCount += 1;
  document.getElementById("alert-count").textContent = alertCount;
  const li = document.createElement("li");
  li.className = SURVEILLANCE.has(a.kind) ? "surveillance" : "account";
  li.dataset.alertId = a.alert_id;
  const when = a.event_time ? new Date(a.event_time).toISOString().replace("T", " ").slice(0, 19) : "";
  const head = document.createElement("div");
  head.innerHTML = "<strong></strong> <span class=account></span> <span class=symbol></span> " +
    "<span class=severity></span> <time></time>";
  head.querySelector("strong").textContent = a.kind;
  head.querySelector(".account").textContent = a.account || "";
  head.querySelector(".symbol").textContent = a.symbol || "";
  head.querySelector(".severity").textContent = a.severity ? "severity " + a.severity : "";
  head.querySelector("time").textContent = when;
  const evidence = document.createElement("pre");
  evidence.className = "evidence";
  evidence.textContent = JSON.stringify(a.details || {}, null, 1);
  li.append(head, evidence);
  alertList.prepend(li);
  while (alertList.children.length > 200) alertList.lastChild.remove();
  countAlertKind(a.kind);
  if (a.stream_id) localStorage.setItem(CURSOR_KEY, a.stream_id);
}

function showHealth(h) {
  document.getElementById("health-section").hidden = false;
  const dl = document.getElementById("health");
  const items = [];
  for (const [name, s] of Object.entries(h.streams || {})) {
    items.push([name, s.length === undefined ? String(s) :
      `${s.length.toLocaleString()} entries, lag ${s.lag_ms === null ? "–" : s.lag_ms + " ms"}`]);
  }
  const e = h.edge || {};
  items.push(["quotes in", `${e.quotes_in_per_s}/s`], ["alerts in", `${e.alerts_in_per_s}/s`],
    ["frames out", `${e.frames_out_per_s}/s`], ["connections", e.connections]);
  const dead = h.dead_letters;
  items.push(["dead letters", dead ? `${dead.total} (last hour ${dead.last_hour})` : "–"]);
  dl.replaceChildren(...items.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
}

// ---- charts (uPlot) ----------------------------------------------------------------------
const KINDS = [];                  // kinds in order of first sight
const kindBuckets = new Map();     // minute -> Map(kind -> count)
const rateX = [], rateY = [];
const width = () => Math.max(300, document.getElementById("charts-section").clientWidth - 40);
const rateChart = new uPlot({ width: width(), height: 160, series: [{}, { label: "msgs/s",
  stroke: "#1565c0" }], axes: [{}, {}] }, [rateX, rateY], document.getElementById("chart-rate"));
let alertChart = null;

function countAlertKind(kind) {
  const minute = Math.floor(Date.now() / 60000) * 60;
  if (!kindBuckets.has(minute)) kindBuckets.set(minute, new Map());
  const bucket = kindBuckets.get(minute);
  bucket.set(kind, (bucket.get(kind) || 0) + 1);
  if (!KINDS.includes(kind)) { KINDS.push(kind); alertChart?.destroy(); alertChart = null; }
  drawAlertChart();
}

function drawAlertChart() {
  const xs = [...kindBuckets.keys()].sort((a, b) => a - b).slice(-60);
  const data = [xs, ...KINDS.map((k) => xs.map((x) => kindBuckets.get(x).get(k) || 0))];
  if (!alertChart) {
    const colours = ["#ef6c00", "#6a1b9a", "#2e7d32", "#c62828", "#1565c0", "#00838f", "#5d4037"];
    alertChart = new uPlot({ width: width(), height: 160, series: [{}, ...KINDS.map((k, i) =>
      ({ label: k, stroke: colours[i % colours.length], paths: uPlot.paths.bars?.({ size: [0.6] }) }))] },
      data, document.getElementById("chart-alerts"));
  } else {
    alertChart.setData(data);
  }
}

setInterval(() => {
  rateX.push(Math.floor(Date.now() / 1000));
  rateY.push(messagesThisSecond);
  messagesThisSecond = 0;
  if (rateX.length > 300) { rateX.shift(); rateY.shift(); }
  rateChart.setData([rateX, rateY]);
}, 1000);

// ---- the WebSocket -----------------------------------------------------------------------
function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
}

function subscribe(symbols) {
  symbols = symbols.map((s) => s.trim().toUpperCase()).filter(Boolean);
  symbols.forEach((s) => subscribed.add(s));
  if (symbols.length) send({ action: "subscribe", symbols });
}

function unsubscribe(symbols) {
  symbols.forEach((s) => { subscribed.delete(s); rows.get(s)?.row.remove(); rows.delete(s); });
  send({ action: "unsubscribe", symbols });
}

function onFrame(msg) {
  messagesThisSecond += 1;
  switch (msg.type) {
    case "hello":
      document.getElementById("who").textContent = `${msg.user} (${msg.role})`;
      document.getElementById("watchlist-name").textContent = `watchlist:${msg.user}`;
      subscribe([...new Set([...msg.watchlist, ...subscribed,
        ...(params.get("symbols") || "").split(",")])]);
      Trader.hello(msg);  // a trader's panels (trader.js)
      break;
    case "snapshot": showQuote(msg, true); break;
    case "quote": showQuote(msg, false); break;
    case "quotes":
      messagesThisSecond += msg.quotes.length - 1;
      msg.quotes.forEach((q) => showQuote(q, false));
      break;
    case "alert": showAlert(msg); break;
    case "health": showHealth(msg); break;
    case "error":
      if (Trader.onError(msg)) break;  // shown next to the form field it names
      console.warn("edge:", msg.message);
      (msg.symbols || []).forEach((s) => subscribed.delete(s));
      break;
    default: Trader.onFrame(msg);  // orders, positions, price alerts, market status
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let url = `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`;
  // Replay the alerts missed since the last one seen; on a first visit, the last hour's (a
  // stream id of an hour ago), so the panel and the chart do not start empty.
  const cursor = localStorage.getItem(CURSOR_KEY) || `${Date.now() - 3600 * 1000}-0`;
  url += `&last_alert_id=${encodeURIComponent(cursor)}`;
  ws = new WebSocket(url);
  ws.onopen = () => { setStatus("live", "live"); backoffMs = 500; };
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (event.code === 4401) { setStatus("bad token: " + event.reason, "down"); return; }
    setStatus(`reconnecting (${event.code})`, "down");
    setTimeout(connect, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 10000);
  };
}

document.getElementById("add-symbols").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("symbols-input");
  const symbols = input.value.split(/[\s,]+/).map((s) => s.trim().toUpperCase()).filter(Boolean);
  subscribe(symbols);
  if (symbols.length) send({ action: "watch.add", symbols });  // kept in watchlist:{user}
  input.value = "";
});

if (!token) setStatus("no token: open /?token=… (brokerflow token issue)", "down");
else connect();
