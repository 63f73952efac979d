// Förslag page: a time link plays the recording from that word in the page's own player. (In the recording page's
// Förslag tab, static/player.js handles the same links with the transcript's player.)
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) { return; }
  document.querySelectorAll("a.play[data-seek]").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      player.currentTime = Math.max(0, parseFloat(a.getAttribute("data-seek")) - 0.3);
      var p = player.play();
      if (p && p.catch) { p.catch(function () { /* blocked: the position is set */ }); }
    });
  });
})();
