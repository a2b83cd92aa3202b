// pushgate console: a delivery report that follows a scheduled or running delivery live.
// Every second it reads the report's counts (JSON) and updates the counts, rates, progress and
// status in place; every few polls, and once when the delivery finishes, it swaps in the parts
// the server draws (chart, failures, facts, actions) from a fresh copy of the page. Without this
// script the page's Refresh link does the same.
"use strict";

(() => {
  const report = document.getElementById("report");
  if (!report || report.hasAttribute("data-finished")) return;
  const url = report.dataset.live;
  const INTERVAL = 1000;
  const SWAP_EVERY = 10;
  const numbers = new Intl.NumberFormat("en-US");
  let polls = 0;

  const text = (selector, value) => {
    const element = report.querySelector(selector);
    if (element && element.textContent !== value) element.textContent = value;
  };

  function update(state) {
    for (const [name, value] of Object.entries(state.counts)) {
      for (const element of report.querySelectorAll(`[data-count="${name}"]`)) {
        element.textContent = numbers.format(value);
      }
      const optional = report.querySelector(`[data-optional="${name}"]`);
      if (optional) optional.hidden = value === 0;
    }
    for (const [name, value] of Object.entries(state.rate_text)) text(`[data-rate="${name}"]`, value);
    const progress = document.getElementById("report-progress");
    if (progress) {
      progress.value = Math.round(state.progress * 1000);
      progress.textContent = state.progress_text;
    }
    text("[data-progress]", state.progress_text);
    const badge = report.querySelector("[data-status] .status");
    if (badge) {
      badge.textContent = state.status_label;
      badge.className = `status status-${state.status}`;
    }
    const cancel = report.querySelector("[data-cancel]");
    if (cancel) {
      const pending = numbers.format(state.counts.pending);
      cancel.dataset.confirm = cancel.dataset.confirm.replace(/Its [\d,]+ pending/, `Its ${pending} pending`);
    }
  }

  // The server-drawn parts of the page, from a fresh copy of it.
  async function swap() {
    const response = await fetch(window.location.pathname, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of report.querySelectorAll("[data-swap]")) {
      const replacement = fresh.getElementById(part.id);
      if (replacement && !part.contains(document.activeElement)) part.replaceWith(document.importNode(replacement, true));
    }
  }

  async function poll() {
    let state = null;
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      const json = (response.headers.get("Content-Type") || "").startsWith("application/json");
      if (!response.ok || !json) {
        // A server error may pass; signed out or the delivery gone will not (the Refresh link says why).
        if (response.status >= 500) window.setTimeout(poll, INTERVAL * 5);
        return;
      }
      state = await response.json();
      update(state);
      polls += 1;
      if (state.finished || polls % SWAP_EVERY === 0) await swap();
    } catch (_) {
      // a network hiccup: try again at the next tick
    }
    if (state && state.finished) {
      report.setAttribute("data-finished", "");
      return;
    }
    window.setTimeout(poll, INTERVAL);
  }

  window.setTimeout(poll, INTERVAL);
})();
