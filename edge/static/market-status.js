// The market-status banner: the market's state and the halted or closed symbols, from
// `market_status` frames ({scope: "market" | SYMBOL, state: OPEN | HALTED | CLOSED, reason,
// level, until, ts}). Hidden while everything trades; a symbol not OPEN is also flagged on the
// quote board (its row gets class "halted").
"use strict";

const MarketStatus = (() => {
  let market = null;                // the latest market-wide frame
  const symbols = new Map();        // symbol -> its latest frame, while not OPEN
  const seen = new Map();           // scope -> ts of the frame shown (older ones are ignored)

  function describe(s) {
    let text = s.state;
    if (s.level !== null && s.level !== undefined) text += ` (level ${s.level})`;
    if (s.reason) text += `: ${s.reason}`;
    if (s.until) text += ` until ${utcTime(s.until)} UTC`;
    return text;
  }

  function render() {
    const banner = document.getElementById("market-banner");
    const items = [];
    if (market && market.state !== "OPEN") {
      const strong = document.createElement("strong");
      strong.className = "scope-market";
      strong.dataset.state = market.state;
      strong.textContent = "Market " + describe(market);
      items.push(strong);
    }
    for (const symbol of [...symbols.keys()].sort()) {
      const s = symbols.get(symbol);
      const span = document.createElement("span");
      span.className = "scope-symbol";
      span.dataset.symbol = symbol;
      span.dataset.state = s.state;
      span.textContent = `${symbol} ${describe(s)}`;
      items.push(span);
    }
    banner.replaceChildren(...items);
    banner.hidden = items.length === 0;
    banner.classList.toggle("closed", market?.state === "CLOSED");
  }

  function update(msg) {
    const scope = msg.scope;
    if (!scope) return;
    if (msg.ts && seen.get(scope) > msg.ts) return;    // an older status than the one shown
    seen.set(scope, msg.ts || 0);
    if (scope === "market") {
      market = msg;
    } else {
      if (msg.state === "OPEN") symbols.delete(scope);
      else symbols.set(scope, msg);
      document.getElementById("q-" + scope)?.classList.toggle("halted", msg.state !== "OPEN");
    }
    render();
  }

  // A board row made after its symbol's status came (the snapshot of a later subscription).
  function flag(row, symbol) {
    row.classList.toggle("halted", symbols.has(symbol));
  }

  return { update, flag };
})();
