// pushgate console, New delivery: progressive enhancement of a form that works without it.
// - as you type (debounced), the message is checked by /console/deliveries/preview: template
//   errors next to their fields, the payload-size meter, and the mock-ups once shown;
// - Preview and Send proof happen in place (the same POSTs the buttons make without script);
// - a proof's outcome is polled until no message is Pending;
// - only the chosen app's test devices are offered.
"use strict";

(() => {
  const DEBOUNCE_MS = 400;
  const POLL_MS = 1000;
  const POLL_LIMIT = 180;

  // -- the proof outcome: poll its fragment until it says it is done ----------------------------
  function pollProof(slot, tries = 0) {
    const outcome = slot.querySelector("#proof-outcome");
    if (!outcome || outcome.dataset.done === "true" || tries >= POLL_LIMIT) return;
    window.setTimeout(async () => {
      try {
        const response = await fetch(outcome.dataset.proofUrl, { headers: { Accept: "text/html" } });
        if (response.ok) slot.innerHTML = await response.text();
      } catch (_) {
        // the network hiccupped: try again at the next tick
      }
      pollProof(slot, tries + 1);
    }, POLL_MS);
  }

  const proofSlot = document.getElementById("proof-slot");
  if (proofSlot) pollProof(proofSlot);

  const form = document.getElementById("compose");
  if (!form) return;

  const messageFields = new Set([
    "title", "subtitle", "body", "image_url", "deeplink", "sound", "badge", "ttl_seconds", "priority", "data",
    "preview_profile", "app_id",
  ]);
  const sizeMeter = document.getElementById("size-meter");
  const sizeText = document.querySelector("[data-size-text]");
  let liveErrors = new Set();
  let timer = null;
  let sequence = 0;

  function isMessageField(name) {
    return messageFields.has(name) || /^action_\d+_/.test(name);
  }

  function setError(name, message) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (!slot) return false;
    slot.textContent = message || "";
    const field = slot.closest(".field, fieldset");
    if (field) field.classList.toggle("invalid", Boolean(message));
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (control) {
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
    return true;
  }

  function showErrors(errors) {
    for (const name of liveErrors) if (!(name in errors)) setError(name, "");
    liveErrors = new Set();
    for (const [name, message] of Object.entries(errors)) {
      if (isMessageField(name) || name === "size") {
        if (setError(name, message)) liveErrors.add(name);
      }
    }
  }

  function showSize(largest, limit) {
    if (!sizeMeter || !largest) return;
    sizeMeter.value = largest.size;
    const platform = largest.platform === "ios" ? "iOS" : "Android";
    if (sizeText) sizeText.textContent = `${largest.size} of ${limit} bytes (largest: ${platform})`;
  }

  function body(action) {
    const data = new FormData(form);
    if (action) data.set("action", action);
    return data;
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      body: data,
      headers: { Accept: "application/json", "X-CSRFToken": window.pushgateCsrf ? window.pushgateCsrf() : "" },
    });
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("application/json")) throw new Error(`HTTP ${response.status}`);
    return { status: response.status, json: await response.json() };
  }

  // -- the live check ------------------------------------------------------------------------
  async function check(showPreviews) {
    const mine = ++sequence;
    let result;
    try {
      result = await post(form.dataset.previewUrl, body(null));
    } catch (_) {
      return; // the page still works: the buttons post the form
    }
    if (mine !== sequence) return; // an older answer than one already shown
    const { json } = result;
    showErrors(json.errors || {});
    if (json.largest) showSize(json.largest, json.limit);
    const previews = document.getElementById("previews");
    const shown = previews && previews.querySelector("figure");
    if (json.html && previews && (showPreviews || shown)) previews.outerHTML = json.html;
  }

  form.addEventListener("input", (event) => {
    if (!event.target.name || !isMessageField(event.target.name)) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(() => check(false), DEBOUNCE_MS);
  });

  // -- Preview and Send proof in place ---------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    const action = event.submitter && event.submitter.value;
    if (action === "preview") {
      event.preventDefault();
      window.clearTimeout(timer);
      await check(true);
      return;
    }
    if (action !== "proof" || !proofSlot) return;
    event.preventDefault();
    event.submitter.disabled = true;
    try {
      const { status, json } = await post(form.getAttribute("action"), body("proof"));
      showErrors({});
      if (status >= 400) {
        for (const [name, message] of Object.entries(json.errors || {})) {
          if (setError(name, message)) liveErrors.add(name);
        }
        return;
      }
      proofSlot.innerHTML = json.html;
      pollProof(proofSlot);
      proofSlot.scrollIntoView({ block: "nearest" });
    } catch (_) {
      // Without the answer in place, send the form the ordinary way (submit() sends no button).
      const pressed = document.createElement("input");
      Object.assign(pressed, { type: "hidden", name: "action", value: "proof" });
      form.append(pressed);
      form.submit();
    } finally {
      event.submitter.disabled = false;
    }
  });

  // -- only the chosen app's test devices ------------------------------------------------------
  const appSelect = form.querySelector('select[name="app_id"]');
  function showDevicesOf(appId) {
    for (const group of form.querySelectorAll(".device-group")) {
      const mine = group.dataset.appId === appId;
      group.hidden = !mine;
      if (!mine) for (const box of group.querySelectorAll("input")) box.checked = false;
    }
  }
  if (appSelect) {
    showDevicesOf(appSelect.value);
    appSelect.addEventListener("change", () => showDevicesOf(appSelect.value));
  }
})();
