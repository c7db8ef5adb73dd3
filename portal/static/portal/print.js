/* The printable record's "Print" button (no inline handlers: the site's CSP forbids them). */
"use strict";
document.querySelectorAll("[data-print]").forEach(function (button) {
  button.addEventListener("click", function () { window.print(); });
});
