// pushgate console, sync runs: a run that is still going on reloads its page until it ends.
// Without JavaScript the page says to reload it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const marker = document.querySelector("[data-refresh-seconds]");
  if (!marker) return;
  const seconds = Number(marker.dataset.refreshSeconds) || 3;
  window.setTimeout(() => window.location.reload(), seconds * 1000);
});
