// The trader's price alerts: the form (symbol, condition, value -> alert.create; an `error`
// frame of an alert.* action shown next to the field it names; an account to choose when the
// token has several), the list (alert.list on every hello, each row with a delete button ->
// alert.delete), and a fired alert (`price_alert` frame) marked FIRED in the list and added to
// the alert feed.
"use strict";

const PriceAlerts = (() => {
  const LABELS = { ltp_above: "LTP at or above", ltp_below: "LTP at or below",
    change_pct_above: "change % at or above", change_pct_below: "change % at or below" };
  const FIELDS = ["account", "symbol", "condition", "value"];
  const rows = new Map();          // id -> <tr>
  const firedIds = new Set();      // ids already added to the feed (a replay may repeat one)
  const form = () => document.getElementById("price-alert-form");
  const input = (field) => document.getElementById("pa-" + field);

  function showValue(a) {
    if (!a.condition?.startsWith("change_pct")) return money(a.value);
    return `${Number(a.value) > 0 ? "+" : ""}${a.value} %`;
  }

  function upsert(a) {
    let row = rows.get(String(a.id));
    if (!row) {
      row = tableRow(["symbol", "condition", "value", "alert_status", "actions"]).row;
      row.id = "price-alert-" + a.id;
      row.dataset.id = a.id;
      const remove = document.createElement("button");
      remove.className = "remove";
      remove.textContent = "×";
      remove.title = "delete this alert";
      remove.onclick = () => send({ action: "alert.delete", id: a.id });
      row.querySelector(".actions").appendChild(remove);
      document.querySelector("#price-alerts tbody").prepend(row);
      rows.set(String(a.id), row);
    }
    const status = firedIds.has(String(a.id)) ? "FIRED" : a.status || "ACTIVE";
    row.dataset.status = status;
    row.className = "status-" + status;
    row.querySelector(".symbol").textContent = a.symbol;
    row.querySelector(".condition").textContent = LABELS[a.condition] || a.condition;
    row.querySelector(".value").textContent = showValue(a);
    const ltp = a.ltp ?? a.fired_ltp;
    row.querySelector(".alert_status").textContent =
      status === "FIRED" && ltp !== undefined && ltp !== null ? `FIRED at ${money(ltp)}` : status;
    count();
  }

  function count() {
    const active = [...rows.values()].filter((r) => r.dataset.status === "ACTIVE").length;
    document.getElementById("price-alert-count").textContent = `${active} active`;
  }

  function clearErrors() {
    form().querySelectorAll(".field-error").forEach((el) => { el.textContent = ""; });
    form().querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  }

  // On each hello: the token's accounts to choose from (a token with several must name one),
  // and the list.
  function start(accounts) {
    const select = input("account");
    const chosen = select.value;
    select.replaceChildren(...accounts.map((a) => new Option(a, a, false, a === chosen)));
    select.closest("label").hidden = accounts.length < 2;
    send({ action: "alert.list" });
  }

  function list(alerts) {
    rows.forEach((row) => row.remove());
    rows.clear();
    [...alerts].sort((a, b) => Number(a.id) - Number(b.id)).forEach(upsert);
    count();
  }

  function created(a) {
    clearErrors();
    input("value").value = "";
    upsert(a);
  }

  function deleted(id) {
    rows.get(String(id))?.remove();
    rows.delete(String(id));
    count();
  }

  function fired(p) {
    const id = String(p.id);
    if (firedIds.has(id)) return;
    firedIds.add(id);
    upsert({ ...p, status: "FIRED" });
    showAlert({ kind: "PRICE_ALERT", alert_id: "price-alert-" + id, account: p.account,
      symbol: p.symbol, event_time: p.ts, stream_id: p.stream_id,
      details: { condition: p.condition, value: p.value, ltp: p.ltp } });
    document.querySelector("#alerts li")?.classList.add("price");
  }

  // An error of an alert.* action: next to the field it names ({"field"}, or the message's
  // "alert.create: value: …" prefix), else under the form. Other errors are not ours: false.
  function error(msg) {
    const text = msg.message || "";
    const action = msg.action || (text.match(/^(alert\.\w+)/) || [])[1];
    if (!action?.startsWith("alert.")) return false;
    const named = msg.field || (text.match(/^(?:alert\.\w+: )?(\w+):/) || [])[1];
    const field = FIELDS.includes(named) ? named : "form";
    const slot = form().querySelector(`.field-error[data-field="${field}"]`);
    slot.textContent = field === "form" ? text : text.replace(/^(alert\.\w+: )?\w+: /, "");
    input(field)?.classList.add("invalid");
    return true;
  }

  function submit(event) {
    event.preventDefault();
    clearErrors();
    // The value goes as typed: the edge checks it (and says which field is wrong) and keeps
    // its exact decimal.
    const create = { action: "alert.create", symbol: input("symbol").value.trim().toUpperCase(),
      condition: input("condition").value, value: input("value").value.trim() };
    if (!input("account").closest("label").hidden) create.account = input("account").value;
    send(create);
  }

  form().addEventListener("submit", submit);
  return { start, list, created, deleted, fired, error };
})();
