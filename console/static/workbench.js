// brokerflow workbench, shared by every page: the token, calls to the console's API, the header
// (who is signed in, the nav), errors shown in the page, tables and CSV. No build step.
"use strict";

const TOKEN_KEY = "brokerflow.workbench.token";
const SURVEILLANCE_KINDS = ["EXCESSIVE_OTR", "MARKING_THE_CLOSE", "OWNERSHIP_MISSING",
  "PUMP_AND_DUMP", "SPOOFING", "WASH_TRADE"];
const ACCOUNT_KINDS = ["CONCENTRATION", "LIQUIDATION", "MARGIN_CALL", "MARGIN_CALL_CURED",
  "STOP_TRIGGERED"];
const SEVERITY_SCORES = { INFO: 10, LOW: 30, MEDIUM: 50, HIGH: 75, CRITICAL: 95 };  // domain.triage

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// The token arrives once as ?token=… (a link from `brokerflow token issue`), is kept for the tab
// in sessionStorage and taken out of the address bar, so a copied URL shares the view, not the
// credentials.
function takeToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY) || "";
}
const TOKEN = takeToken();

async function api(path, { method = "GET", body, params } = {}) {
  let url = path;
  if (params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
    if ([...qs].length) url += "?" + qs;
  }
  const init = { method, headers: { Authorization: "Bearer " + TOKEN } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (exc) {
    throw new ApiError(0, "the console did not answer: " + exc.message);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = data && data.error ? data.error : `HTTP ${response.status}: ${text.slice(0, 200)}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

// -- the page's messages ----------------------------------------------------------------------

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  const box = document.getElementById("error");
  box.textContent = "";
  box.hidden = true;
}

function showNotice(id, message) {
  const box = document.getElementById(id);
  box.textContent = message;
  box.hidden = !message;
}

// Run an async step; an API error goes to the page's error box (and is returned as null).
async function guarded(step) {
  try {
    return await step();
  } catch (exc) {
    showError(exc instanceof ApiError ? exc.message : "error: " + exc.message);
    if (!(exc instanceof ApiError)) console.error(exc);
    return null;
  }
}

// -- building the page ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function pageUrl(page, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") qs.set(k, v);
  const text = qs.toString();
  return `/${page}.html` + (text ? "?" + text : "");
}

function alertLink(a, text) {
  return el("a", { href: pageUrl("alert", { id: a.alert_id }), dataset: { testid: "alert-link" } },
    text || a.kind);
}

function accountLink(account) {
  return account ? el("a", { href: pageUrl("account", { account }) }, account) : "–";
}

function isoOfMs(ms) {
  return ms === null || ms === undefined ? "–" : new Date(ms).toISOString();
}

function sideName(side) {
  return side === "1" ? "buy" : side === "" || side === null || side === undefined ? "–" : "sell";
}

function scoreOf(severity) {
  const text = String(severity ?? "");
  if (/^[0-9]{1,3}$/.test(text)) return Math.min(Number(text), 100);
  return SEVERITY_SCORES[text] ?? 0;
}

function cellText(value) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A table of {columns, rows (objects)}; `render` may give a cell's content per column.
function dataTable(columns, rows, { render = {}, testid, caption, rowAttrs } = {}) {
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c)));
  const body = rows.map((row) => el("tr", rowAttrs ? rowAttrs(row) : {}, columns.map((c) => {
    const value = row[c];
    const content = render[c] ? render[c](value, row) : cellText(value);
    return el("td", { class: typeof value === "number" ? "num" : undefined }, content);
  })));
  return el("table", { dataset: testid ? { testid } : {} },
    caption ? el("caption", { class: "muted" }, caption) : null,
    el("thead", {}, head), el("tbody", {}, body));
}

// CSV as RFC 4180 (what the API's format=csv writes), built from the JSON shown.
function csvText(columns, rows) {
  const quote = (v) => {
    const text = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(text) ? '"' + text.replaceAll('"', '""') + '"' : text;
  };
  return [columns.map(quote).join(","), ...rows.map((r) => columns.map((c) => quote(r[c])).join(","))]
    .join("\r\n") + "\r\n";
}

function csvButton(filename, columns, rows, testid) {
  return el("button", {
    type: "button", dataset: { testid },
    "aria-label": `download ${filename} as CSV`,
    onclick: () => {
      const blob = new Blob([csvText(columns, rows)], { type: "text/csv" });
      const link = el("a", { href: URL.createObjectURL(blob), download: filename });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    },
  }, "Download CSV");
}

// -- the header: who, and the nav -------------------------------------------------------------

async function startPage() {
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll("header nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
  }
  if (!TOKEN) {
    showError("no token: open this page with ?token=… (brokerflow token issue --role analyst)");
    return null;
  }
  const session = await guarded(() => api("/api/session"));
  if (!session) return null;
  document.getElementById("who").textContent = `${session.user} (${session.role})`;
  document.body.dataset.role = session.role;
  for (const node of document.querySelectorAll("[data-needs-role]")) {
    node.hidden = node.dataset.needsRole !== session.role;
  }
  return session;
}
