/* The recording page's workspace (templates/_workspace.html). Without JavaScript its tabs are links to sections
   shown below each other; here:
   - the assistant's tabs (Fråga, Sammanfattningar, Innehåll, Förslag, Personuppgifter) follow the ARIA tabs pattern
     (arrow keys, Home/End); the chosen tab is kept for the recording while the browser tab lives, and a link or a
     form's answer to something inside a tab (#summary-3) opens that tab;
   - on a narrow screen a switch shows the transcript or the assistant (a link to a line shows the transcript);
   - the Förslag and Personuppgifter tabs are loaded when first shown (?panel=1), and their forms are sent from the
     tab and answered into it; a correction there refreshes the changed lines of the transcript;
   - on a wide screen the two panes fill the window below the page's head, each scrolling on its own. */
(function () {
  "use strict";
  var ws = document.getElementById("workspace");
  if (!ws) { return; }
  ws.classList.add("ws-js");
  var narrow = window.matchMedia("(max-width: 63.99rem)");
  var recId = (document.querySelector("[data-recording-id]") || ws).getAttribute("data-recording-id") || "";
  var TAB_KEY = "samtalsstod.tab." + recId;

  /* One tab list (ul[data-tablist] of a[data-tab] pointing at its panels); show(panel) is called on a change. */
  function tabs(ul, show) {
    var links = Array.prototype.slice.call(ul.querySelectorAll("a[data-tab]"));
    var panels = links.map(function (a) { return document.getElementById(a.getAttribute("href").slice(1)); });
    ul.setAttribute("role", "tablist");
    var nav = ul.closest("nav");
    if (nav && nav.getAttribute("aria-label")) { ul.setAttribute("aria-label", nav.getAttribute("aria-label")); }
    links.forEach(function (a, i) {
      a.parentNode.setAttribute("role", "presentation");
      a.setAttribute("role", "tab");
      a.id = "tab-" + panels[i].id;
      a.setAttribute("aria-controls", panels[i].id);
      a.addEventListener("click", function (e) { e.preventDefault(); select(i, false); });
      a.addEventListener("keydown", function (e) {
        var to = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: links.length - 1}[e.key];
        if (to === undefined) { return; }
        e.preventDefault();
        select((to + links.length) % links.length, true);
      });
    });
    var chosen = -1;
    function select(i, focus) {
      chosen = i;
      links.forEach(function (a, j) {
        a.setAttribute("aria-selected", String(i === j));
        a.tabIndex = i === j ? 0 : -1;
      });
      show(panels[i], panels);
      if (focus) { links[i].focus(); }
    }
    return {
      panels: panels,
      select: select,
      selected: function () { return panels[chosen]; },
      indexOf: function (el) {
        for (var i = 0; i < panels.length; i++) { if (panels[i] && panels[i].contains(el)) { return i; } }
        return -1;
      }
    };
  }

  /* --- the assistant's tabs ---------------------------------------------------------------------- */
  var assistantList = ws.querySelector("ul[data-tablist=assistant]");
  var assistant = assistantList ? tabs(assistantList, function (panel, panels) {
    panels.forEach(function (p) {
      p.setAttribute("role", "tabpanel");
      p.setAttribute("aria-labelledby", "tab-" + p.id);
      p.hidden = p !== panel;
    });
    try { window.sessionStorage.setItem(TAB_KEY, panel.id); } catch (err) { /* private mode */ }
    load(panel);
  }) : null;

  /* --- the phone's switch between the transcript and the assistant ------------------------------- */
  var switchList = ws.querySelector("ul[data-tablist=switch]");
  var panes = switchList ? tabs(switchList, function (pane, all) {
    all.forEach(function (p) { p.classList.toggle("ws-off", p !== pane); });
  }) : null;
  function showPane(id) {
    if (!panes) { return; }
    for (var i = 0; i < panes.panels.length; i++) {
      if (panes.panels[i] && panes.panels[i].id === id) { panes.select(i, false); }
    }
  }

  /* --- tabs loaded when first shown (Förslag, Personuppgifter) ----------------------------------- */
  function load(panel, after) {
    var src = panel.getAttribute("data-panel-src"), body = panel.querySelector("[data-panel-body]");
    if (!src || !body || (panel.getAttribute("data-loaded") && !after)) { return; }
    panel.setAttribute("data-loaded", "1");
    panel.setAttribute("aria-busy", "true");
    (after || fetch(src, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "text/html"}}))
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        return r.ok ? r.text() : Promise.reject(new Error("status " + r.status));
      })
      .then(function (html) { body.innerHTML = html; })
      .catch(function () {
        panel.removeAttribute("data-loaded");
        body.querySelectorAll(".panel-error").forEach(function (x) { x.remove(); });
        var p = document.createElement("p");
        p.className = "notice notice-error panel-error";
        p.setAttribute("role", "alert");
        p.textContent = "Fliken kunde inte hämtas. Försök igen, eller öppna länken nedan.";
        body.insertBefore(p, body.firstChild);
      })
      .then(function () { panel.removeAttribute("aria-busy"); });
  }
  ws.addEventListener("submit", function (e) {
    var form = e.target, panel = form.closest("[data-panel-src]");
    if (!panel || (form.getAttribute("method") || "get").toLowerCase() !== "post" || !window.FormData) { return; }
    e.preventDefault();
    var body = new FormData(form);
    if (e.submitter && e.submitter.name) { body.append(e.submitter.name, e.submitter.value); }
    var edits = form.getAttribute("action").indexOf("/suggestions/accept") >= 0;
    load(panel, fetch(form.getAttribute("action"), {method: "POST", body: body, credentials: "same-origin",
                                                    headers: {"Accept": "text/html"}}).then(function (r) {
      if (edits && r.ok && window.SamtalTranscript) {
        window.SamtalTranscript.refreshLines({since: true}).catch(function () { /* shown at the next reload */ });
      }
      return r;
    }));
    var heading = panel.querySelector("h2");
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); } // the form is about to be replaced
  });

  /* --- where a link (or a form's answer) points ------------------------------------------------- */
  function reveal(id, scroll) {
    var target = id ? document.getElementById(id) : null;
    if (!target || !ws.contains(target)) { return false; }
    if (assistant) {
      var i = assistant.indexOf(target);
      if (i >= 0) { assistant.select(i, false); }
    }
    showPane(target.closest(".pane") ? target.closest(".pane").id : "");
    if (scroll && window.SamtalTranscript && target.matches("li.seg")) {
      window.SamtalTranscript.goTo(target, {target: true, focus: true}); // a line: inside its pane only
    } else if (scroll) {
      target.scrollIntoView({block: "start"});
    }
    return true;
  }
  if (assistant) {
    var remembered = null;
    try { remembered = window.sessionStorage.getItem(TAB_KEY); } catch (err) { remembered = null; }
    var first = remembered ? assistant.indexOf(document.getElementById(remembered)) : -1;
    assistant.select(first >= 0 ? first : 0, false);
  }
  if (panes) { panes.select(0, false); }
  // after every deferred script (player.js) has run, so a link to a line (#seg-12) can use the transcript's own
  document.addEventListener("DOMContentLoaded", function () { reveal(window.location.hash.slice(1), true); });
  window.addEventListener("hashchange", function () { reveal(window.location.hash.slice(1), true); });

  /* --- on a wide screen the panes fill the window below the page's head --------------------------- */
  function fit() {
    if (narrow.matches) { ws.style.removeProperty("--ws-height"); return; }
    var top = ws.getBoundingClientRect().top + window.scrollY;
    ws.style.setProperty("--ws-height", Math.max(480, window.innerHeight - Math.min(top, 0.45 * window.innerHeight) - 16) + "px");
  }
  fit();
  window.addEventListener("resize", fit);

  window.SamtalWorkspace = {
    showTranscript: function () { showPane("transcript-pane"); },
    showAssistant: function () { showPane("assistant-pane"); },
    reveal: reveal
  };
})();
