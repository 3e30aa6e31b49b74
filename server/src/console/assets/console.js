// The console works without this script; it adds conveniences only.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Select or clear every row of the review queue.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      document.querySelectorAll('input[name="ids"]').forEach((box) => {
        box.checked = all.checked;
      });
    });
  }
  // Forms that change a lot at once ask first.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
  // A button is pressed once: a slow answer must not turn into a second decision.
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      form.querySelectorAll("button[type=submit]").forEach((b) => {
        b.disabled = true;
      });
    });
  });
});
