// The trader's positions panel, from `positions` frames ({account, cash, equity, excess, state,
// holdings: [{symbol, quantity, avg_price, mark, unrealised_pnl, realised_pnl_today}], ts}):
// one summary row per account (a margin call flagged) and one row per holding, P&L coloured by
// sign, with the totals of the token's accounts. The figures are shown as the edge sends them:
// the page values nothing itself.
"use strict";

const Positions = (() => {
  const accounts = new Map();      // account -> the latest figures of its frames
  const HOLDING_CELLS = ["account", "symbol", "quantity", "avg_price", "mark", "unrealised_pnl",
    "realised_pnl_today"];
  const ACCOUNT_CELLS = ["account", "cash", "equity", "excess", "state"];
  const STATE_TEXT = { NORMAL: "normal", CALL: "MARGIN CALL", LIQUIDATING: "LIQUIDATING" };

  function update(msg) {
    if (!msg.account) return;
    // A frame carries what changed; keep the account's other figures from the earlier ones.
    const doc = { ...(accounts.get(msg.account) || {}) };
    for (const [key, value] of Object.entries(msg)) if (value !== undefined) doc[key] = value;
    accounts.set(msg.account, doc);
    render();
  }

  function renderAccount(tbody, doc) {
    const { row, cells } = tableRow(ACCOUNT_CELLS);
    row.dataset.account = doc.account;
    const state = doc.state || "";
    const flagged = state !== "" && state !== "NORMAL";
    row.className = flagged ? "margin-call" : "";
    setCell(cells.account, doc.account);
    setCell(cells.cash, money(doc.cash));
    setCell(cells.equity, money(doc.equity));
    setCell(cells.excess, signedMoney(doc.excess), signClass(doc.excess));
    setCell(cells.state, STATE_TEXT[state] || state || "–");
    tbody.appendChild(row);
  }

  function renderHolding(tbody, account, h) {
    const { row, cells } = tableRow(HOLDING_CELLS);
    row.id = `pos-${account}-${h.symbol}`;
    row.dataset.account = account;
    row.dataset.symbol = h.symbol;
    setCell(cells.account, account);
    setCell(cells.symbol, h.symbol);
    setCell(cells.quantity, qty(h.quantity), signClass(h.quantity) === "down" ? "down" : "");
    setCell(cells.avg_price, money(h.avg_price));
    setCell(cells.mark, money(h.mark));
    setCell(cells.unrealised_pnl, signedMoney(h.unrealised_pnl), signClass(h.unrealised_pnl));
    setCell(cells.realised_pnl_today, signedMoney(h.realised_pnl_today),
      signClass(h.realised_pnl_today));
    tbody.appendChild(row);
  }

  function render() {
    const summary = document.querySelector("#accounts tbody");
    const holdings = document.querySelector("#positions tbody");
    summary.replaceChildren();
    holdings.replaceChildren();
    let unrealised = 0, realised = 0, calls = 0;
    for (const account of [...accounts.keys()].sort()) {
      const doc = accounts.get(account);
      renderAccount(summary, doc);
      if (doc.state && doc.state !== "NORMAL") calls += 1;
      for (const h of doc.holdings || []) {
        renderHolding(holdings, account, h);
        unrealised += Number(h.unrealised_pnl) || 0;
        realised += Number(h.realised_pnl_today) || 0;
      }
    }
    const total = document.getElementById("positions-total");
    setCell(total.querySelector(".unrealised_pnl"), signedMoney(unrealised), signClass(unrealised));
    setCell(total.querySelector(".realised_pnl_today"), signedMoney(realised), signClass(realised));
    const flag = document.getElementById("margin-flag");
    flag.hidden = calls === 0;
    flag.textContent = [...accounts.values()]
      .filter((d) => d.state && d.state !== "NORMAL")
      .map((d) => `${STATE_TEXT[d.state] || d.state} on ${d.account}: ` +
        `excess ${signedMoney(d.excess)}`)
      .join(" · ");
  }

  return { update };
})();
