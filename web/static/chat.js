/* The assistant on a recording's page (web/assistant_chat.py). The forms work without JavaScript; here:
   - chat answers stream in (server-sent events over fetch): the statement being written grows word by word,
     each finished statement gets its citation links and the grounding check's flag;
   - the topic table of contents shows its progress while it is made;
   - a failure (model down or slow, connection lost) shows the message and a "Försök igen" button; a stream
     that goes silent longer than IDLE_MS is abandoned, so the page never hangs;
   - links with data-seek (citations, topics) jump to the transcript line and play: static/player.js;
   - the question field, when first on screen or focused, warms the model server (it reads the transcript before
     the question). */
(function () {
  "use strict";
  var IDLE_MS = 150000; // the server sends a keep-alive every few seconds; silence this long = lost

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds)), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    var ss = ("0" + (s % 60)).slice(-2);
    return h ? h + ":" + ("0" + m).slice(-2) + ":" + ss : ("0" + m).slice(-2) + ":" + ss;
  }

  if (!window.fetch || !window.FormData || !window.TextDecoder) { return; }

  /* --- server-sent events over fetch (POST with the form's CSRF token) --------------------------- */
  function stream(form, body, handlers) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = null, finished = false;
    function idle() {
      if (timer) { window.clearTimeout(timer); }
      timer = window.setTimeout(function () {
        if (controller) { controller.abort(); }
        fail("Inget svar kom i tid. Försök igen om en stund.");
      }, IDLE_MS);
    }
    function fail(message) {
      if (finished) { return; }
      finished = true;
      if (timer) { window.clearTimeout(timer); }
      handlers.error(message);
    }
    idle();
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin", cache: "no-store",
                        headers: {"Accept": "text/event-stream"}, signal: controller ? controller.signal : undefined})
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        var type = r.headers.get("Content-Type") || "";
        if (!r.ok || type.indexOf("text/event-stream") !== 0) {
          return r.json().then(function (b) { fail(b.error || "Begäran kunde inte behandlas."); },
                               function () { fail("Begäran kunde inte behandlas. Ladda om sidan och försök igen."); });
        }
        var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              if (!finished) { fail("Anslutningen bröts innan svaret var klart. Försök igen."); }
              return;
            }
            idle();
            buffer += decoder.decode(chunk.value, {stream: true});
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(function (block) {
              block.split("\n").forEach(function (line) {
                if (line.indexOf("data:") !== 0 || finished) { return; }
                var data = JSON.parse(line.slice(5));
                if (data.type === "error") { fail(data.message); return; }
                if (data.type === "done") {
                  finished = true;
                  window.clearTimeout(timer);
                  handlers.done(data);
                  return;
                }
                if (handlers[data.type]) { handlers[data.type](data); }
              });
            });
            return finished ? reader.cancel() : pump();
          });
        }
        return pump();
      })
      .catch(function () { fail("Kunde inte nå Samtalsstöd. Kontrollera anslutningen och försök igen."); });
  }

  function retryButton(onRetry) {
    var b = el("button", "button-secondary chat-retry", "Försök igen");
    b.type = "button";
    b.addEventListener("click", onRetry);
    return b;
  }

  /* After an answer or a table of contents is complete, take the server's rendering of that part of the
     page (citation links, rewrite forms), so a streamed answer looks exactly like a stored one. */
  function refresh(ids) {
    return fetch(window.location.pathname, {credentials: "same-origin", cache: "no-store",
                                            headers: {"Accept": "text/html"}})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("status")); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        ids.forEach(function (id) {
          var fresh = doc.getElementById(id), old = document.getElementById(id);
          if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
        });
      });
  }

  /* --- chat ------------------------------------------------------------------------------------ */
  function statementItem(s) {
    var li = el("li", "stmt" + (s.flagged ? " stmt-flagged" : ""));
    li.appendChild(el("span", "stmt-text", s.text));
    (s.citations || []).forEach(function (c) {
      li.appendChild(document.createTextNode(" "));
      if (c.idx === null || c.idx === undefined) {
        li.appendChild(el("span", "cite cite-unknown", "[" + c.number + "]"));
        return;
      }
      var a = el("a", "cite", "[" + c.number + "]");
      a.href = "#seg-" + c.idx;
      a.setAttribute("data-seek", String(c.start));
      a.setAttribute("aria-label", "Rad " + c.number + " vid " + clock(c.start));
      li.appendChild(a);
    });
    if (s.flagged) { li.appendChild(document.createTextNode(" ")); li.appendChild(el("span", "stmt-flag", "Kontrollera: " + s.status_text)); }
    return li;
  }

  function askQuestion(form, body) {
    var log = document.getElementById("chat-log");
    var status = document.querySelector("#chat-form .assistant-status");
    var button = form.querySelector("button[type=submit]");
    var question = body.get("question") || "";
    var rewrite = form.querySelector("select[name=rewrite]");
    var item = el("li", "chat-msg chat-pending");
    item.setAttribute("aria-busy", "true");
    var q = el("p", "chat-q");
    q.appendChild(el("span", "chat-who", "Du:"));
    q.appendChild(document.createTextNode(" " + (rewrite ? "Skriv om: " + (question || rewrite.options[rewrite.selectedIndex].text) : question)));
    item.appendChild(q);
    var answer = el("ol", "chat-answer");
    item.appendChild(answer);
    var current = null;
    log.appendChild(item);
    if (button) { button.disabled = true; }
    if (status) { status.textContent = "Väntar på språkmodellen …"; }
    item.scrollIntoView({block: "nearest"});

    stream(form, body, {
      start: function (d) { item.id = "chat-" + d.id; },
      text: function (d) {
        if (!current) { current = el("li", "stmt stmt-writing"); current.appendChild(el("span", "stmt-text", "")); answer.appendChild(current); }
        current.firstChild.textContent += d.text;
        if (status) { status.textContent = "Svaret skrivs …"; }
      },
      statement: function (s) {
        var done = statementItem(s);
        if (current) { answer.replaceChild(done, current); } else { answer.appendChild(done); }
        current = null;
      },
      done: function (d) {
        if (current) { current.remove(); }
        item.removeAttribute("aria-busy");
        item.classList.remove("chat-pending");
        if (button) { button.disabled = false; }
        if (status) { status.textContent = d.flagged ? "Svaret är klart. " + d.flagged + " påstående(n) behöver kontrolleras." : "Svaret är klart."; }
        if (form.id === "chat-form") { form.querySelector("textarea").value = ""; }
        refresh(["chat-log"]).catch(function () { /* the streamed answer stays as it is */ });
      },
      error: function (message) {
        item.removeAttribute("aria-busy");
        if (current) { current.remove(); current = null; }
        if (button) { button.disabled = false; }
        var box = el("div", "notice notice-error chat-error");
        box.setAttribute("role", "alert");
        box.appendChild(el("p", null, message));
        box.appendChild(retryButton(function () { item.remove(); askQuestion(form, body); }));
        item.appendChild(box);
        if (status) { status.textContent = ""; }
      }
    });
  }

  /* --- topics ---------------------------------------------------------------------------------- */
  function makeTopics(form, body) {
    var status = form.querySelector(".assistant-status");
    var bar = form.querySelector("progress");
    var button = form.querySelector("button[type=submit]");
    var old = form.querySelector(".chat-error");
    if (old) { old.remove(); }
    button.disabled = true;
    status.textContent = "Skapar innehållsförteckning …";
    stream(form, body, {
      progress: function (d) {
        bar.hidden = false;
        bar.max = Math.max(1, d.total);
        bar.value = d.done;
        bar.textContent = Math.round(100 * d.done / Math.max(1, d.total)) + " %";
        var eta = window.SamtalProgress ? window.SamtalProgress.eta(form.action, d.done / Math.max(1, d.total)) : "";
        status.textContent = "Läser utskriften i delar: del " + d.done + " av " + d.total + " klar" + (eta ? ", " + eta : "") + ".";
      },
      done: function () {
        status.textContent = "Innehållsförteckningen är klar.";
        refresh(["topics"]).catch(function () { window.location.reload(); });
      },
      error: function (message) {
        button.disabled = false;
        bar.hidden = true;
        status.textContent = "";
        var box = el("div", "notice notice-error chat-error");
        box.setAttribute("role", "alert");
        box.appendChild(el("p", null, message));
        box.appendChild(retryButton(function () { makeTopics(form, body); }));
        form.appendChild(box);
      }
    });
  }

  /* --- warm-up: the first time the question field is on screen (the Fråga tab, open by default) or gets focus,
     the model server reads the transcript, so the first answer starts in seconds instead of after the whole
     transcript has been read (tens of seconds on a CPU). Only for a finished transcript (the template leaves
     data-warm out while one is still being made: live transcription needs the CPU). Fire and forget. --- */
  var chatForm = document.getElementById("chat-form");
  var warmUrl = chatForm && chatForm.getAttribute("data-warm");
  if (warmUrl) {
    var warmed = false;
    var warmOnce = function () {
      if (warmed) { return; }
      warmed = true;
      var body = new FormData();
      body.append("csrf_token", chatForm.querySelector("input[name=csrf_token]").value);
      fetch(warmUrl, {method: "POST", body: body, credentials: "same-origin", cache: "no-store",
                      headers: {"Accept": "application/json"}}).catch(function () { /* the question just waits */ });
    };
    chatForm.addEventListener("focusin", warmOnce);
    if ("IntersectionObserver" in window) {
      var seen = new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting; })) { seen.disconnect(); warmOnce(); }
      });
      seen.observe(chatForm);
    }
  }

  document.addEventListener("submit", function (e) {
    var form = e.target.closest && e.target.closest("form[data-stream]");
    if (!form) { return; }
    e.preventDefault();
    var body = new FormData(form);
    if (form.getAttribute("data-stream") === "topics") { makeTopics(form, body); } else { askQuestion(form, body); }
  });
})();
