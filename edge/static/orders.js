// The trader's orders of the day: the `orders` snapshot of open orders on (re)connect, then each
// `order` frame updating its order's row (status, filled / quantity, leaves, average price, the
// last fill, the reject or cancel reason). An order is one row through its ClOrdID chain: a row is
// found by the frame's cl_ord_id, else its orig_cl_ord_id, else the venue's order_id (a cancel or
// replace request has a ClOrdID of its own, the same OrderID). Newest orders first.
"use strict";

const Orders = (() => {
  const CELLS = ["time", "account", "symbol", "side", "ord_status", "filled", "leaves_qty",
    "avg_px", "last", "reason"];
  const OPEN = new Set(["NEW", "PARTIALLY_FILLED", "REPLACED", "PENDING_NEW", "PENDING_CANCEL",
    "PENDING_REPLACE", "TRIGGERED", "HELD", "ACCEPTED_FOR_BIDDING", "CALCULATED"]);
  const byClOrdId = new Map();     // cl_ord_id -> entry {row, cells, last}
  const byOrderId = new Map();     // order_id -> entry
  // Venues answer a reject of an order they never took with OrderID NONE or 0: not a key.
  const usable = (id) => id && id !== "NONE" && id !== "0";

  function find(o) {
    return byClOrdId.get(o.cl_ord_id) || byClOrdId.get(o.orig_cl_ord_id)
      || (usable(o.order_id) ? byOrderId.get(o.order_id) : null);
  }

  function entryFor(o) {
    let entry = find(o);
    if (entry) return entry;
    const { row, cells } = tableRow(CELLS);
    row.id = "order-" + o.cl_ord_id;
    entry = { row, cells, last: null };
    document.querySelector("#orders tbody").prepend(row);
    return entry;
  }

  function update(o) {
    if (!o.cl_ord_id) return;
    const entry = entryFor(o);
    if (entry.last && o.ts < entry.last.ts) return;    // older than what is shown
    entry.last = o;
    byClOrdId.set(o.cl_ord_id, entry);
    if (usable(o.order_id)) byOrderId.set(o.order_id, entry);
    const { row, cells } = entry;
    row.dataset.clOrdId = o.cl_ord_id;
    row.dataset.orderId = o.order_id || "";
    row.dataset.status = o.status;
    row.className = "status-" + o.status;
    const cum = Number(o.cum_qty) || 0;
    const leaves = Number(o.leaves_qty) || 0;
    setCell(cells.time, utcTime(o.ts));
    setCell(cells.account, o.account || "");
    setCell(cells.symbol, o.symbol || "");
    setCell(cells.side, o.side || "", o.side === "BUY" ? "buy" : "sell");
    setCell(cells.ord_status, (o.status || "").replaceAll("_", " "));
    // The frame has no OrderQty: while working it is cum + leaves; a reject shows none.
    setCell(cells.filled, `${qty(cum)} / ${cum + leaves ? qty(cum + leaves) : "–"}`);
    setCell(cells.leaves_qty, qty(leaves));
    setCell(cells.avg_px, cum ? money(o.avg_px) : "–");
    setCell(cells.last, Number(o.last_qty) ? `${qty(o.last_qty)} @ ${money(o.last_px)}` : "–");
    setCell(cells.reason, o.reason || "");
    cells.reason.title = o.reason || "";
    countOpen();
  }

  function snapshot(orders) {
    [...orders].sort((a, b) => (a.ts || 0) - (b.ts || 0)).forEach(update);
    countOpen();
  }

  function countOpen() {
    let open = 0;
    for (const entry of new Set(byClOrdId.values())) if (OPEN.has(entry.last.status)) open += 1;
    document.getElementById("orders-open").textContent = `${open} open`;
  }

  return { update, snapshot };
})();
