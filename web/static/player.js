/* The transcript pane of the recording page (templates/_workspace.html), beside the audio:
   - click a line (or its time) to play from there; the line being played is marked (aria-current) and kept in view
     while it plays, unless the reader has scrolled away;
   - a link to a line (a citation [12], a topic, a suggestion's time; a[data-seek] or href="#seg-N") scrolls the
     transcript pane to the line, highlights it, moves focus there and plays from the cited time;
   - keyboard shortcuts (the list on the page, "Kortkommandon"; one-key shortcuts can be turned off, WCAG 2.1.4):
     K/space play-pause, J/L 5 s back/forward, N/P next/previous line (also ↓/↑ on a line), O/Shift+O next/previous
     doubtful word, E edit the line (static/edit.js), / find, ? the list;
   - find in the transcript with a hit count (Enter: next, Shift+Enter: previous), highlighted with the CSS Custom
     Highlight API so the lines themselves are not rewritten;
   - ?t=<seconds> (a search hit) starts there.
   window.SamtalTranscript is what static/edit.js and static/workspace.js use: lines, going to one, refreshing some
   from the server after an edit. */
(function () {
  "use strict";
  var player = document.getElementById("player");
  var list = document.getElementById("transcript");
  if (!player || !list) { return; }
  var STEP_S = 5, DOUBT_LEAD_S = 0.5, SHORTCUTS_KEY = "samtalsstod.shortcuts";
  var scroller = document.getElementById("transcript-body");
  var status = document.getElementById("transcript-status");
  var times = [], current = null, cursor = null, lastDoubt = null, follow = true;

  function lines() { return list.querySelectorAll("li.seg[data-start]"); }
  function index() {
    times = Array.prototype.map.call(lines(), function (el) {
      return {idx: el.getAttribute("data-idx"), start: parseFloat(el.getAttribute("data-start")),
              end: parseFloat(el.getAttribute("data-end"))};
    });
  }
  index();
  function lineEl(idx) { return document.getElementById("seg-" + idx); }
  function say(text) { if (status) { status.textContent = text; } }

  function play() {
    var p = player.play();
    if (p && p.catch) { p.catch(function () { /* blocked or interrupted: the controls still work */ }); }
  }
  function seek(t) {
    var max = isFinite(player.duration) ? player.duration : Infinity;
    player.currentTime = Math.max(0, Math.min(t, max));
  }
  function toggle() { if (player.paused) { play(); } else { player.pause(); } }

  /* Is the element within the visible part of the transcript (the pane on a desktop, the window on a phone)? */
  function inView(el) {
    var r = el.getBoundingClientRect();
    var box = scroller && scroller.scrollHeight > scroller.clientHeight + 1 ? scroller.getBoundingClientRect()
      : {top: 0, bottom: window.innerHeight};
    return r.bottom > box.top && r.top < box.bottom;
  }

  /* Scroll a line into view inside the transcript pane only (scrollIntoView would scroll the page too); on a phone,
     where the page itself scrolls, the browser's own. */
  function scrollToLine(el, block) {
    if (!scroller || scroller.scrollHeight <= scroller.clientHeight + 1) {
      el.scrollIntoView({block: block, inline: "nearest"});
      return;
    }
    var r = el.getBoundingClientRect(), s = scroller.getBoundingClientRect();
    if (block === "nearest") {
      if (r.top < s.top) { scroller.scrollTop += r.top - s.top - 8; } else if (r.bottom > s.bottom) { scroller.scrollTop += r.bottom - s.bottom + 8; }
    } else {
      scroller.scrollTop += (r.top - s.top) - (s.height - r.height) / 2;
    }
    if (s.top < 0 || s.bottom > window.innerHeight) { scroller.scrollIntoView({block: "nearest"}); }
  }

  /* Go to a line: show the transcript (phone), scroll it into view, optionally highlight it as the target, focus
     it, and seek (and play) the player. */
  function goTo(el, opts) {
    opts = opts || {};
    if (window.SamtalWorkspace) { window.SamtalWorkspace.showTranscript(); }
    if (opts.target) {
      Array.prototype.forEach.call(list.querySelectorAll(".seg-target"), function (x) { x.classList.remove("seg-target"); });
      el.classList.add("seg-target");
    }
    scrollToLine(el, opts.block || "center");
    if (opts.focus) {
      if (!el.hasAttribute("tabindex")) { el.setAttribute("tabindex", "-1"); }
      el.focus({preventScroll: true});
    }
    cursor = el;
    follow = true;
    if (opts.seek !== undefined && opts.seek !== null) {
      seek(opts.seek);
      if (opts.play) { play(); }
      mark();
    }
  }

  /* The line the reader is at: the one holding focus, else the last one gone to, else the one playing. */
  function here() {
    var a = document.activeElement;
    var focused = a && a.closest ? a.closest("li.seg") : null;
    if (focused && list.contains(focused)) { return focused; }
    if (cursor && list.contains(cursor)) { return cursor; }
    return current;
  }

  function step(dir) {
    var all = lines(), at = here(), i = -1;
    for (var k = 0; at && k < all.length; k++) { if (all[k] === at) { i = k; break; } }
    var next = all[i < 0 ? (dir > 0 ? 0 : all.length - 1) : i + dir];
    if (!next) { return; }
    goTo(next, {focus: true, block: "nearest", seek: parseFloat(next.getAttribute("data-start")), play: !player.paused});
  }

  /* Next/previous doubtful word (mark.doubt) from where the reader is; plays from just before it. */
  function doubt(dir) {
    var marks = Array.prototype.slice.call(list.querySelectorAll("mark.doubt"));
    if (!marks.length) { say("Inga osäkra ord i utskriften."); return; }
    var at = here(), from = lastDoubt && list.contains(lastDoubt) && (!at || at.contains(lastDoubt)) ? lastDoubt : null;
    var i = dir > 0 ? 0 : marks.length - 1;
    function lineOf(m) { return parseInt(m.closest("li.seg").getAttribute("data-idx"), 10); }
    if (from) {
      i = marks.indexOf(from) + dir;
    } else if (at) {
      var here_ = parseInt(at.getAttribute("data-idx"), 10);
      i = -1;
      for (var k = 0; k < marks.length; k++) {
        if (dir > 0 && lineOf(marks[k]) >= here_) { i = k; break; }
        if (dir < 0 && lineOf(marks[k]) < here_) { i = k; }
      }
    }
    var pick = i >= 0 ? marks[i] : null;
    if (!pick) { say(dir > 0 ? "Inga fler osäkra ord efter den här raden." : "Inga osäkra ord före den här raden."); return; }
    if (lastDoubt) { lastDoubt.classList.remove("doubt-current"); }
    pick.classList.add("doubt-current");
    lastDoubt = pick;
    var line = pick.closest("li.seg");
    goTo(line, {focus: true, seek: Math.max(0, parseFloat(pick.getAttribute("data-t")) - DOUBT_LEAD_S), play: true});
    var n = marks.indexOf(pick) + 1;
    var count = document.querySelector("[data-doubt-count]");
    if (count) { count.textContent = "(" + n + " av " + marks.length + ")"; }
    say("Osäkert ord " + n + " av " + marks.length + ": " + pick.textContent);
  }

  /* --- the line being played -------------------------------------------------------------------- */
  function lineAt(t) {
    var lo = 0, hi = times.length - 1, found = -1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (times[mid].start <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found >= 0 && t < times[found].end ? lineEl(times[found].idx) : null;
  }
  function mark() {
    var found = lineAt(player.currentTime);
    if (found === current) { return; }
    var wasVisible = current && inView(current);
    if (current) { current.removeAttribute("aria-current"); }
    if (found) {
      found.setAttribute("aria-current", "true");
      // keep the playing line in view, unless the reader has scrolled elsewhere meanwhile
      if (!player.paused && follow && (wasVisible || !current) && !inView(found)) {
        scrollToLine(found, "nearest");
      }
    }
    current = found;
  }
  player.addEventListener("timeupdate", mark);
  player.addEventListener("seeked", mark);
  if (scroller) {
    scroller.addEventListener("wheel", function () { follow = false; }, {passive: true});
    scroller.addEventListener("touchmove", function () { follow = false; }, {passive: true});
  }
  player.addEventListener("play", function () { if (current && inView(current)) { follow = true; } });

  /* --- clicks: a line plays from its start; a link to a line goes there -------------------------- */
  list.addEventListener("click", function (e) {
    var el = e.target.closest("li.seg[data-start]");
    if (!el || e.target.closest(".line-editor, a")) { return; }
    if (list.classList.contains("transcript-editable") && e.target.closest(".seg-speaker")) { return; } // edit.js
    var selection = window.getSelection && window.getSelection();
    if (selection && !selection.isCollapsed && !e.target.closest("button")) { return; } // selecting text
    cursor = el;
    seek(parseFloat(el.getAttribute("data-start")));
    play();
  });

  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[data-seek], a[href^='#seg-']");
    if (!a || e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) { return; }
    var id = a.getAttribute("data-line") || (a.getAttribute("href") || "").split("#")[1];
    var el = id ? document.getElementById(id) : null;
    var t = a.hasAttribute("data-seek") ? parseFloat(a.getAttribute("data-seek")) : null;
    if (!(el && list.contains(el)) && t === null) { return; }
    e.preventDefault();
    if (el && list.contains(el)) {
      goTo(el, {target: true, focus: true, seek: t, play: t !== null});
    } else {
      seek(t); play();
    }
  });

  /* --- keyboard shortcuts ------------------------------------------------------------------------ */
  var toggleBox = document.querySelector("[data-shortcuts-toggle]");
  var helpBox = document.getElementById("shortcuts");
  var enabled = true;
  try { enabled = window.localStorage.getItem(SHORTCUTS_KEY) !== "off"; } catch (err) { enabled = true; }
  if (helpBox) { helpBox.hidden = false; }
  if (toggleBox) {
    toggleBox.checked = enabled;
    toggleBox.addEventListener("change", function () {
      enabled = toggleBox.checked;
      try { window.localStorage.setItem(SHORTCUTS_KEY, enabled ? "on" : "off"); } catch (err) { /* private mode */ }
    });
  }

  document.addEventListener("keydown", function (e) {
    if (!enabled || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey || e.isComposing) { return; }
    var t = e.target;
    if (t && t.closest && t.closest("input, textarea, select, [contenteditable], audio, .line-editor")) { return; }
    var onControl = t && t.closest && t.closest("button, a, summary, [role=tab]");
    var onLine = t && t.matches && t.matches("li.seg");
    switch (e.key) {
      case " ": if (onControl) { return; } toggle(); break;
      case "k": case "K": toggle(); break;
      case "j": case "J": seek(player.currentTime - STEP_S); break;
      case "l": case "L": seek(player.currentTime + STEP_S); break;
      case "n": case "N": step(1); break;
      case "p": case "P": step(-1); break;
      case "ArrowDown": if (!onLine) { return; } step(1); break;
      case "ArrowUp": if (!onLine) { return; } step(-1); break;
      case "o": doubt(1); break;
      case "O": doubt(e.shiftKey ? -1 : 1); break;
      case "e": case "E":
        if (!window.SamtalEdit || !here()) { return; }
        window.SamtalEdit.open(here(), onLine ? "line" : "link");
        break;
      case "/": if (!findInput) { return; } findInput.focus(); findInput.select(); break;
      case "?": if (!helpBox) { return; } helpBox.open = !helpBox.open; if (helpBox.open) { helpBox.querySelector("summary").focus(); } break;
      default: return;
    }
    e.preventDefault();
  });

  var doubtButton = document.querySelector("[data-next-doubt]");
  if (doubtButton) {
    var n = list.querySelectorAll("mark.doubt").length;
    doubtButton.hidden = n === 0;
    doubtButton.querySelector("[data-doubt-count]").textContent = "(" + n + ")";
    doubtButton.addEventListener("click", function () { doubt(1); });
  }

  /* --- find in the transcript -------------------------------------------------------------------- */
  var findForm = document.querySelector("form[data-find]");
  var findInput = findForm ? findForm.querySelector("input[type=search]") : null;
  var findCount = findForm ? findForm.querySelector("[data-find-count]") : null;
  var highlights = window.CSS && window.CSS.highlights && typeof window.Highlight === "function";
  var hits = [], at = -1, searched = null, timer = null;

  function msg(name, values) {
    var text = findForm.getAttribute("data-msg-" + name) || "";
    Object.keys(values || {}).forEach(function (k) { text = text.replace("%(" + k + ")s", values[k]); });
    return text;
  }
  function clearHits() {
    if (highlights) { window.CSS.highlights.delete("find-hits"); window.CSS.highlights.delete("find-current"); }
    Array.prototype.forEach.call(list.querySelectorAll(".seg-hit"), function (x) { x.classList.remove("seg-hit"); });
    hits = []; at = -1;
  }
  /* Every occurrence of the query in the lines' text (case-insensitive), as DOM ranges over its text nodes. */
  function search(query) {
    clearHits();
    searched = query;
    var needle = query.trim().toLocaleLowerCase("sv");
    if (!needle) { findCount.textContent = ""; return; }
    Array.prototype.forEach.call(list.querySelectorAll("li.seg .seg-text"), function (textEl) {
      var nodes = [], offsets = [], text = "", walker = document.createTreeWalker(textEl, NodeFilter.SHOW_TEXT);
      for (var node = walker.nextNode(); node; node = walker.nextNode()) {
        nodes.push(node); offsets.push(text.length); text += node.nodeValue;
      }
      var hay = text.toLocaleLowerCase("sv"), from = 0, pos;
      function locate(p) {
        var k = nodes.length - 1;
        while (k > 0 && offsets[k] > p) { k--; }
        return [nodes[k], p - offsets[k]];
      }
      while ((pos = hay.indexOf(needle, from)) >= 0) {
        var a = locate(pos), b = locate(pos + needle.length), range = document.createRange();
        range.setStart(a[0], a[1]); range.setEnd(b[0], b[1]);
        hits.push({range: range, line: textEl.closest("li.seg")});
        from = pos + needle.length;
      }
    });
    if (highlights && hits.length) {
      var all = new window.Highlight();
      hits.forEach(function (h) { all.add(h.range); });
      window.CSS.highlights.set("find-hits", all);
    } else {
      hits.forEach(function (h) { h.line.classList.add("seg-hit"); });
    }
    findCount.textContent = hits.length === 0 ? msg("none") : hits.length === 1 ? msg("one") : msg("many", {n: hits.length});
  }
  function show(i) {
    if (!hits.length) { return; }
    at = (i + hits.length) % hits.length;
    var hit = hits[at];
    if (highlights) { window.CSS.highlights.set("find-current", new window.Highlight(hit.range)); }
    goTo(hit.line, {block: "center"});
    findCount.textContent = msg("at", {i: at + 1, n: hits.length});
  }
  if (findForm && findInput && findCount) {
    var prevButton = findForm.querySelector("[data-find-prev]");
    var nextButton = findForm.querySelector("[data-find-next]");
    if (prevButton) { prevButton.hidden = false; }
    if (nextButton) { nextButton.textContent = "Nästa träff"; }
    findInput.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { search(findInput.value); }, 250);
    });
    findForm.addEventListener("submit", function (e) {
      e.preventDefault();
      window.clearTimeout(timer);
      if (searched !== findInput.value) { search(findInput.value); }
      show(at + 1);
    });
    findInput.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && e.shiftKey) {
        e.preventDefault();
        if (searched !== findInput.value) { search(findInput.value); }
        show(at < 0 ? hits.length - 1 : at - 1);
      } else if (e.key === "Escape" && findInput.value) {
        e.preventDefault();
        findInput.value = "";
        search("");
      }
    });
    if (prevButton) {
      prevButton.addEventListener("click", function () {
        if (searched !== findInput.value) { search(findInput.value); }
        show(at < 0 ? hits.length - 1 : at - 1);
      });
    }
  }

  /* --- lines refreshed from the server (after an edit, or "Rätta alla" in the Förslag tab) --------- */
  function refreshLines(opts) {
    var url = list.getAttribute("data-lines-url") + "?" + (opts.idx || []).map(function (i) {
      return "idx=" + encodeURIComponent(i);
    }).concat(opts.since ? ["since=" + list.getAttribute("data-max-edit")] : []).join("&");
    return fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("status " + r.status)); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html"), fresh = doc.querySelector("ol");
        var replaced = [];
        Array.prototype.forEach.call(fresh.querySelectorAll("li.seg"), function (li) {
          var old = document.getElementById(li.id);
          if (!old) { return; }
          var node = document.importNode(li, true);
          if (old.getAttribute("aria-current")) { node.setAttribute("aria-current", "true"); }
          if (old.classList.contains("seg-target")) { node.classList.add("seg-target"); }
          old.replaceWith(node);
          if (current === old) { current = node; }
          if (cursor === old) { cursor = node; }
          replaced.push(node);
        });
        list.setAttribute("data-max-edit", fresh.getAttribute("data-max-edit"));
        index();
        if (searched) { search(searched); }
        if (doubtButton) {
          var n = list.querySelectorAll("mark.doubt").length;
          doubtButton.hidden = n === 0;
          doubtButton.querySelector("[data-doubt-count]").textContent = "(" + n + ")";
        }
        return replaced;
      });
  }

  /* A search hit links here as ?t=12.3#seg-4: start at that time (playback waits for the user). */
  var wanted = parseFloat(new URLSearchParams(window.location.search).get("t"));
  if (isFinite(wanted) && wanted >= 0) {
    var startAt = function () { seek(wanted); mark(); };
    if (player.readyState >= 1) { startAt(); } else { player.addEventListener("loadedmetadata", startAt, {once: true}); }
  }

  window.SamtalTranscript = {list: list, lineEl: lineEl, goTo: goTo, refreshLines: refreshLines, say: say};
})();
