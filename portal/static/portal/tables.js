/* On a phone the lists' tables become one block per row (site.css) and their header row is
   hidden: each cell is given its column's name (data-label), which site.css shows before the
   value, so "Unknown" reads "Sex: Unknown". A template may set data-label itself. */
"use strict";
document.querySelectorAll("table.list").forEach(function (table) {
  var head = table.tHead && table.tHead.rows[0];
  if (!head) { return; }
  var names = [];
  Array.prototype.forEach.call(head.cells, function (cell) {
    for (var i = 0; i < (cell.colSpan || 1); i += 1) { names.push(cell.textContent.trim()); }
  });
  Array.prototype.forEach.call(table.tBodies, function (body) {
    Array.prototype.forEach.call(body.rows, function (row) {
      var column = 0;
      Array.prototype.forEach.call(row.cells, function (cell) {
        if (!cell.hasAttribute("data-label") && names[column]) {
          cell.setAttribute("data-label", names[column]);
        }
        column += cell.colSpan || 1;
      });
    });
  });
});
