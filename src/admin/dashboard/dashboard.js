// pagehook dashboard: the pages work without this. It filters the rows shown as one types
// (the form searches every page on Enter), submits an outcome choice at once, and copies
// commands. No inline script runs: the Content-Security-Policy forbids it.
"use strict";

(function () {
  const text = document.getElementById("filter-text");
  const outcome = document.getElementById("filter-outcome");
  const table = document.getElementById("watchers");
  const shown = document.getElementById("filter-shown");

  if (text && table) {
    const rows = Array.from(table.tBodies[0].rows);
    const apply = function () {
      const needle = text.value.trim().toLowerCase();
      let visible = 0;
      for (const row of rows) {
        const hit =
          needle === "" ||
          row.dataset.name.toLowerCase().includes(needle) ||
          row.dataset.url.toLowerCase().includes(needle);
        row.hidden = !hit;
        if (hit) visible += 1;
      }
      shown.textContent =
        needle === "" ? "" : visible + " of " + rows.length + " on this page · Enter searches all";
    };
    text.addEventListener("input", apply);
  }

  if (outcome) {
    outcome.addEventListener("change", function () {
      outcome.form.submit();
    });
  }

  for (const button of document.querySelectorAll("button.copy")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(button.dataset.copy).then(
        function () {
          button.textContent = "copied";
          setTimeout(function () {
            button.textContent = "copy";
          }, 1500);
        },
        function () {
          button.textContent = "select and copy";
        }
      );
    });
  }
})();
