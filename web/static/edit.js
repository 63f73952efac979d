/* Editing a transcript line in place (templates/_line_editor.html). Without JavaScript "Redigera" opens the line's
   own edit page; here it (or E on a line, or a click on a line's speaker label) opens the editor inside the line:
   its text, its speaker and that speaker's name for the whole recording. Saving sends the same form with fetch, the
   line is refreshed from the server (GET /recordings/<id>/lines) and focus returns where it was: the line's
   "Redigera" link, or the line. Esc (or Avbryt) closes without saving; Ctrl+Enter saves. Speaker changes are sent
   by static/speakers.js, which updates every line of that speaker at once. */
(function () {
  "use strict";
  var list = document.getElementById("transcript");
  var template = document.getElementById("line-editor-template");
  if (!list || !template || !window.fetch || !window.FormData || !window.SamtalTranscript) { return; }
  var T = window.SamtalTranscript;
  var segmentsUrl = list.getAttribute("data-segments-url"), speakersUrl = list.getAttribute("data-speakers-url");
  var open = null; // {li, editor, idx, back: "link" | "line"}

  /* The recording's speakers: the compact panel's list, else the labels on the lines. */
  function speakers() {
    var seen = {}, out = [];
    var labels = document.querySelectorAll("#speakers .seg-speaker[data-speaker], #transcript .seg-speaker[data-speaker]");
    Array.prototype.forEach.call(labels, function (el) {
      var n = el.getAttribute("data-speaker");
      if (!seen[n]) { seen[n] = true; out.push({number: n, name: el.textContent}); }
    });
    return out.sort(function (a, b) { return a.number - b.number; });
  }

  function backTo(idx, kind) {
    var li = T.lineEl(idx);
    if (!li) { return; }
    var link = li.querySelector(".seg-edit-link");
    if (kind === "link" && link) { link.focus(); return; }
    if (!li.hasAttribute("tabindex")) { li.setAttribute("tabindex", "-1"); }
    li.focus();
  }

  function close(returnFocus) {
    if (!open) { return; }
    var was = open;
    open = null;
    was.editor.remove();
    was.li.classList.remove("seg-editing");
    if (returnFocus) { backTo(was.idx, was.back); }
  }

  function openEditor(li, back, focusName) {
    close(false);
    var idx = li.getAttribute("data-idx"), base = segmentsUrl + idx;
    var editor = template.content.firstElementChild.cloneNode(true);
    var textForm = editor.querySelector(".seg-edit-form");
    textForm.action = base + "/edit";
    textForm.querySelector("input[name=base]").value = li.getAttribute("data-edit-id") || "";
    textForm.querySelector("textarea").value = li.querySelector(".seg-text").textContent;
    editor.querySelector("[data-editor-time]").textContent = li.querySelector(".seg-time").textContent;
    editor.querySelector("[data-editor-history]").href = base + "/history";

    var speakerForm = editor.querySelector(".seg-speaker-form"), select = speakerForm.querySelector("select");
    speakerForm.action = base + "/speaker";
    var mine = li.getAttribute("data-speaker");
    speakers().forEach(function (sp) {
      var o = new Option(sp.name, sp.number, false, sp.number === mine);
      select.appendChild(o);
    });
    select.appendChild(new Option(select.getAttribute("data-new-label"), "new", false, !mine));

    var nameForm = editor.querySelector("[data-editor-name]"), label = li.querySelector(".seg-speaker");
    if (mine && label) {
      nameForm.hidden = false;
      nameForm.action = speakersUrl + mine + "/name";
      nameForm.querySelector("[data-editor-speaker]").textContent = label.textContent;
      nameForm.querySelector("input[name=name]").value = /^Talare \d+$/.test(label.textContent) ? "" : label.textContent;
    }
    li.querySelector(".seg-body").appendChild(editor);
    li.classList.add("seg-editing");
    open = {li: li, editor: editor, idx: idx, back: back};
    var field = focusName && !nameForm.hidden ? nameForm.querySelector("input[name=name]") : textForm.querySelector("textarea");
    field.focus();
    if (field.setSelectionRange) { field.setSelectionRange(field.value.length, field.value.length); }
  }

  list.addEventListener("click", function (e) {
    var link = e.target.closest("a.seg-edit-link");
    if (link && e.button === 0 && !e.ctrlKey && !e.metaKey && !e.shiftKey) {
      e.preventDefault();
      openEditor(link.closest("li.seg"), "link", false);
      return;
    }
    var label = e.target.closest("li.seg .seg-body > .seg-speaker");
    if (label && !e.target.closest(".line-editor")) { openEditor(label.closest("li.seg"), "line", true); return; }
    if (e.target.closest("[data-editor-cancel]")) { close(true); }
  });

  list.addEventListener("keydown", function (e) {
    if (!open || !open.editor.contains(e.target)) { return; }
    if (e.key === "Escape") { e.preventDefault(); close(true); return; }
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.matches("textarea")) {
      e.preventDefault();
      var form = e.target.form;
      if (form.requestSubmit) { form.requestSubmit(); } else { form.dispatchEvent(new Event("submit", {cancelable: true, bubbles: true})); }
    }
  });

  list.addEventListener("submit", function (e) {
    var form = e.target.closest(".seg-edit-form");
    if (!form || !open) { return; }
    e.preventDefault();
    var state = open, status = form.querySelector(".seg-edit-status"), button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = "Sparar …";
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (!res.ok) { status.textContent = res.body.error || "Raden kunde inte sparas."; return null; }
        return T.refreshLines({idx: [state.idx]}).then(function () {
          if (open === state) { open = null; }
          backTo(state.idx, state.back);
          T.say("Raden är sparad.");
        });
      })
      .catch(function () { status.textContent = "Raden kunde inte sparas. Försök igen."; })
      .then(function () { button.disabled = false; });
  });

  window.SamtalEdit = {
    open: function (li, back) { openEditor(li, back === "line" ? "line" : "link", false); },
    close: close
  };
})();
