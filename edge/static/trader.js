// The trader's page: which panels a trader's token shows and which frames feed them, plus the
// number formatting the panels share. console.js calls Trader.hello on every hello,
// Trader.onFrame for the frame types it does not handle itself, and Trader.onError for errors.
// Panels: positions.js, orders.js, price-alerts.js; the banner (every role): market-status.js.
"use strict";

const TRADER_SECTIONS = ["positions-section", "orders-section", "price-alerts-section"];

// Amounts arrive as JSON numbers (exact decimals written by the flows); shown with 2 decimals.
function money(x) {
  if (x === null || x === undefined || x === "") return "–";
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function signedMoney(x) {
  if (x === null || x === undefined || x === "") return "–";
  return (Number(x) > 0 ? "+" : "") + money(x);
}

function qty(x) {
  if (x === null || x === undefined || x === "") return "–";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: 8 });
}

// "up" / "down" / "" by the sign of x (console.css colours td.up green, td.down red).
function signClass(x) {
  const n = Number(x);
  return x === null || x === undefined || !n ? "" : n > 0 ? "up" : "down";
}

function utcTime(ms) {
  return ms ? new Date(ms).toISOString().slice(11, 19) : "–";
}

// A <tr> with one <td class=NAME> per name; returns {row, cells}.
function tableRow(names) {
  const row = document.createElement("tr");
  const cells = {};
  for (const name of names) {
    const td = document.createElement("td");
    td.className = name;
    row.appendChild(td);
    cells[name] = td;
  }
  return { row, cells };
}

function setCell(td, text, cls) {
  td.textContent = text;
  if (cls !== undefined) td.className = td.className.split(" ")[0] + (cls ? " " + cls : "");
}

const Trader = (() => {
  const handlers = {
    orders: (m) => Orders.snapshot(m.orders || []),
    order: (m) => Orders.update(m),
    positions: (m) => Positions.update(m),
    price_alert: (m) => PriceAlerts.fired(m),
    "alert.created": (m) => PriceAlerts.created(m),
    "alert.list": (m) => PriceAlerts.list(m.alerts || []),
    "alert.deleted": (m) => PriceAlerts.deleted(m.id),
    market_status: (m) => MarketStatus.update(m),
  };

  function hello(msg) {
    if (msg.role !== "trader") return;
    document.body.classList.add("trader");
    TRADER_SECTIONS.forEach((id) => { document.getElementById(id).hidden = false; });
    PriceAlerts.start(msg.accounts || []);
  }

  function onFrame(msg) {
    handlers[msg.type]?.(msg);
  }

  // Errors of the trader's actions (alert.*) go next to the form field they name.
  function onError(msg) {
    return PriceAlerts.error(msg);
  }

  return { hello, onFrame, onError };
})();
