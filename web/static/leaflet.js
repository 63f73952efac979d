/* The client leaflet: a print button (the page prints fine without it, from the browser's menu). */
(function () {
  "use strict";
  var button = document.querySelector("[data-print]");
  if (button) { button.addEventListener("click", function () { window.print(); }); }
})();
