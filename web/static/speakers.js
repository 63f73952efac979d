/* Speakers on the recording page: renaming a speaker (the compact Talare panel, or the editor opened in a line by
   static/edit.js) and giving a line another speaker are plain forms (they work without JS); here they are sent with
   fetch and the page is updated in place: a new name on every line of that speaker, in the panel and in the open
   editor. Choosing "Ny talare" posts the form normally (the page reloads with the new speaker everywhere). Errors
   are shown next to the form. */
(function () {
  "use strict";
  if (!window.fetch || !window.FormData) { return; }

  function send(form, status, done) {
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Sparar …";
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (!res.ok) { status.textContent = res.body.error || "Ändringen kunde inte sparas."; return; }
        done(res.body);
      })
      .catch(function () { status.textContent = "Ändringen kunde inte sparas. Försök igen."; })
      .then(function () { button.disabled = false; });
  }

  function addLines(number, delta) { // the "N rader" count beside a speaker in the list
    var el = document.querySelector(".speaker-lines[data-speaker='" + number + "']");
    if (!el) { return; }
    var n = parseInt(el.getAttribute("data-lines"), 10) + delta;
    el.setAttribute("data-lines", String(n));
    el.textContent = n === 1 ? "1 rad" : n + " rader";
  }

  function setLabel(label, number, name) {
    var li = label.closest("li.seg");
    if (li) { li.setAttribute("data-speaker", String(number)); }
    label.textContent = name;
    label.setAttribute("data-speaker", String(number));
    label.className = "seg-speaker speaker-" + (number % 8);
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.classList.contains("speaker-name-form")) {
      e.preventDefault();
      send(form, form.querySelector(".speaker-status"), function (body) {
        var sel = "[data-speaker='" + body.speaker + "']";
        Array.prototype.forEach.call(document.querySelectorAll(".seg-speaker" + sel), function (el) {
          el.textContent = body.name;
        });
        Array.prototype.forEach.call(document.querySelectorAll(".seg-speaker-form option[value='" + body.speaker + "']"),
          function (opt) { opt.textContent = body.name; });
        var editing = form.querySelector("[data-editor-speaker]");
        if (editing) { editing.textContent = body.name; }
        form.querySelector(".speaker-status").textContent = "Sparat.";
      });
    } else if (form.classList.contains("seg-speaker-form")) {
      if (form.querySelector("select").value === "new") { return; } // a reload shows the new speaker everywhere
      e.preventDefault();
      send(form, form.querySelector(".seg-speaker-status"), function (body) {
        var li = form.closest(".seg");
        var label = li.querySelector(".seg-speaker");
        if (!label) {
          label = document.createElement("span");
          li.querySelector(".seg-text").insertAdjacentElement("beforebegin", label);
        } else if (label.getAttribute("data-speaker") !== String(body.speaker)) {
          addLines(label.getAttribute("data-speaker"), -1);
        }
        if (label.getAttribute("data-speaker") !== String(body.speaker)) { addLines(body.speaker, 1); }
        setLabel(label, body.speaker, body.name);
        form.querySelector(".seg-speaker-status").textContent = "Sparat.";
      });
    }
  });
})();
