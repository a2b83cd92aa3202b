// pushgate console: progressive enhancement shared by every page. Pages work without it.
"use strict";

// Buttons with data-confirm ask before their form is sent.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const question = button && button.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// Buttons with data-copy copy the text of the element whose id they name.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copied";
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(source);
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// The CSRF token of the page, for requests scripts make (header X-CSRFToken).
window.pushgateCsrf = () => {
  const field = document.querySelector('input[name="csrf_token"]');
  return field ? field.value : "";
};
