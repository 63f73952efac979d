/* Inline editing of transcript lines: the per-line form (which works without JS) is sent with fetch,
   the line's text is updated in place and the form closes. Errors are shown next to the form. */
(function () {
  "use strict";
  var list = document.getElementById("transcript");
  if (!list || !window.fetch || !window.FormData) { return; }

  list.addEventListener("submit", function (e) {
    var form = e.target.closest(".seg-edit-form");
    if (!form) { return; }
    e.preventDefault();
    var status = form.querySelector(".seg-edit-status");
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Sparar …";
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (!res.ok) { status.textContent = res.body.error || "Raden kunde inte sparas."; return; }
        var li = form.closest(".seg");
        li.querySelector(".seg-text").textContent = res.body.text;
        form.querySelector("input[name=base]").value = res.body.edit_id;
        form.querySelector("textarea").value = res.body.text;
        status.textContent = "Sparad.";
        var details = form.closest("details");
        if (details) { details.open = false; details.querySelector("summary").focus(); }
      })
      .catch(function () { status.textContent = "Raden kunde inte sparas. Försök igen."; })
      .then(function () { button.disabled = false; });
  });
})();
