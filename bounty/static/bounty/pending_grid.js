// The pending images grid: arrows move between tiles, c confirms, d discards (the tile's own button, so the
// same CSRF-protected POST as a click), x selects for a bulk action.
(function () {
  "use strict";
  var form = document.getElementById("pending-grid");
  if (!form) return;
  var tiles = Array.prototype.slice.call(form.querySelectorAll(".tile"));
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      form.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = all.checked; });
    });
  }
  if (tiles.length) tiles[0].focus();
  function columns() {
    if (tiles.length < 2) return 1;
    var top = tiles[0].offsetTop, count = 0;
    while (count < tiles.length && tiles[count].offsetTop === top) count++;
    return Math.max(count, 1);
  }
  form.addEventListener("keydown", function (event) {
    var tile = event.target.closest ? event.target.closest(".tile") : null;
    if (!tile || event.target.tagName === "BUTTON" && (event.key === "Enter" || event.key === " ")) return;
    var index = tiles.indexOf(tile), step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() }[event.key];
    if (step !== undefined) {
      var next = tiles[Math.min(Math.max(index + step, 0), tiles.length - 1)];
      next.focus();
      event.preventDefault();
      return;
    }
    var key = event.key.toLowerCase();
    if (key === "x") {
      var box = tile.querySelector("input[name=ids]");
      if (box) box.checked = !box.checked;
      event.preventDefault();
    } else if (key === "c" || key === "d") {
      var button = tile.querySelector('button[data-key="' + key + '"]');
      if (button) { event.preventDefault(); button.click(); }
    }
  });
})();
