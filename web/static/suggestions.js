// Förslag tab: a time link plays the recording from that word in the page's own player.
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) { return; }
  document.querySelectorAll("a.play[data-start]").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      player.currentTime = Math.max(0, parseFloat(a.dataset.start) - 0.3);
      player.play();
    });
  });
}());
