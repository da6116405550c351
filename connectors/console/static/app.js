// prismflow reviewer console: live inbox rows, streamed chat answers,
// field highlighting and keyboard keys. Every page works without this
// script; it only makes the pages live and quicker to use.
(function () {
  "use strict";

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // htmx requests carry the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function fromHTML(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function getHTML(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" }).then(function (r) {
      return r.status === 200 ? r.text() : null;
    });
  }

  function rowOf(id) {
    return $all("tr[data-doc-id]").filter(function (tr) { return tr.getAttribute("data-doc-id") === id; })[0] || null;
  }

  // ---- Inbox: live rows ------------------------------------------------

  var inbox = $("#inbox-body");
  var docHead = $(".doc-head");

  // latest numbers each row's refreshes: only the answer to the newest
  // request is applied, since answers may come back out of order and an
  // older one shows an older state.
  var latest = {};
  var seq = 0;

  // refreshRow replaces a document's row with its current rendering, or
  // inserts it at the top when the page shows the newest documents.
  function refreshRow(id) {
    var mine = ++seq;
    latest[id] = mine;
    return getHTML("/inbox/rows/" + encodeURIComponent(id)).then(function (html) {
      if (!html || latest[id] !== mine) { return; }
      var fresh = fromHTML(html);
      var old = rowOf(id);
      if (old) {
        var focused = document.activeElement === old;
        old.replaceWith(fresh);
        if (focused) { fresh.focus(); }
      } else if (inbox && inbox.getAttribute("data-insert") === "true") {
        inbox.insertBefore(fresh, inbox.firstElementChild);
        var empty = $(".empty");
        if (empty) { empty.remove(); }
      }
    });
  }

  function onUpdate(u) {
    if (inbox) {
      var row = rowOf(u.document);
      if (row) {
        // The status at once; the rest of the row from the server.
        row.setAttribute("data-status", u.status);
      }
      refreshRow(u.document);
    }
    if (docHead && docHead.getAttribute("data-doc-id") === u.document) {
      var status = $('[data-testid="doc-status"]');
      var label = status && status.getAttribute("data-label-" + u.status);
      if (label) {
        status.setAttribute("data-status", u.status);
        status.className = "badge status-" + u.status;
        status.textContent = label;
      }
      var reload = $("#reload-doc");
      if (reload) { reload.hidden = false; }
    }
  }

  if ((inbox || docHead) && window.EventSource) {
    var source = new EventSource("/events");
    source.addEventListener("update", function (e) {
      try { onUpdate(JSON.parse(e.data)); } catch (err) { /* a malformed event is skipped */ }
    });
    // Updates were dropped for this page: bring every unfinished row up
    // to date.
    source.addEventListener("resync", function () {
      $all('tr[data-status="processing"]').forEach(function (tr) { refreshRow(tr.getAttribute("data-doc-id")); });
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // ---- Upload ------------------------------------------------------------

  var upload = $('form[data-testid="upload-form"]');
  if (upload) {
    var status = $("#upload-status");
    upload.addEventListener("htmx:beforeSwap", function (e) {
      if (!e.detail.xhr || e.detail.xhr.status !== 200) { return; }
      // The live stream may have brought the row first.
      var row = fromHTML(e.detail.xhr.responseText);
      if (row && rowOf(row.getAttribute("data-doc-id"))) { e.detail.shouldSwap = false; }
    });
    upload.addEventListener("htmx:afterRequest", function (e) {
      var xhr = e.detail.xhr;
      if (!xhr) { return; }
      if (xhr.status === 200) {
        upload.reset();
        if (status) { status.textContent = ""; }
        // The first document of an empty inbox: the row is in.
        var empty = $(".empty");
        if (empty) { empty.remove(); }
      } else if (status) {
        status.textContent = xhr.responseText || xhr.statusText;
      }
    });
  }

  // ---- Document: field source highlighting ----------------------------

  function clearHighlights() {
    $all('mark[data-testid="highlight"]').forEach(function (m) {
      var parent = m.parentNode;
      parent.replaceChild(document.createTextNode(m.textContent), m);
      parent.normalize();
    });
  }

  // highlight marks runes [start, end) of a section's text: offsets are
  // in Unicode code points, as the pipeline counts them.
  function highlight(section, start, end) {
    var box = $('#section-' + section + ' [data-testid="section-text"]');
    if (!box) { return; }
    clearHighlights();
    var chars = Array.from(box.textContent);
    if (start < 0 || end > chars.length || start >= end) { return; }
    var mark = document.createElement("mark");
    mark.setAttribute("data-testid", "highlight");
    mark.textContent = chars.slice(start, end).join("");
    box.textContent = "";
    box.append(chars.slice(0, start).join(""), mark, chars.slice(end).join(""));
    mark.scrollIntoView({ block: "center", behavior: "smooth" });
  }

  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest('[data-testid="field-source"]');
    if (!btn) { return; }
    highlight(btn.getAttribute("data-section"), parseInt(btn.getAttribute("data-start"), 10), parseInt(btn.getAttribute("data-end"), 10));
  });

  // A citation or a skip link moves the keyboard focus too, not only the
  // view.
  window.addEventListener("hashchange", function () {
    var target = document.getElementById(location.hash.slice(1));
    if (target) { target.focus({ preventScroll: true }); }
  });

  // ---- Document: chat with streamed answers ----------------------------

  var chatForm = $('form[data-testid="chat-form"]');
  var chatLog = $("#chat-log");
  if (chatForm && chatLog && window.fetch && window.TextDecoder) {
    chatForm.addEventListener("submit", function (e) {
      e.preventDefault();
      var field = chatForm.elements.question;
      var text = field.value.trim();
      if (!text) { return; }
      var button = $('[data-testid="chat-submit"]', chatForm);
      button.disabled = true;

      var q = document.createElement("li");
      q.className = "question";
      var qt = document.createElement("div");
      qt.className = "text";
      qt.textContent = text;
      q.appendChild(qt);
      var a = document.createElement("li");
      a.className = "answer streaming";
      a.setAttribute("data-testid", "chat-answer");
      a.setAttribute("data-done", "false");
      var at = document.createElement("div");
      at.className = "text";
      a.appendChild(at);
      chatLog.append(q, a);

      function finish(msg) {
        if (msg && msg.html) {
          var done = fromHTML(msg.html);
          a.replaceWith(done);
        } else {
          a.classList.add("error");
          at.textContent = (msg && msg.error) || "";
          a.setAttribute("data-done", "true");
        }
        button.disabled = false;
      }

      var body = new URLSearchParams(new FormData(chatForm));
      fetch(chatForm.action, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "Accept": "application/x-ndjson" }
      }).then(function (resp) {
        if (!resp.ok || !resp.body) {
          return resp.text().then(function (t) { finish({ error: t || resp.statusText }); });
        }
        field.value = "";
        var reader = resp.body.getReader();
        var decoder = new TextDecoder();
        var buf = "";
        var last = null;
        function pump() {
          return reader.read().then(function (r) {
            buf += decoder.decode(r.value || new Uint8Array(), { stream: !r.done });
            var lines = buf.split("\n");
            buf = lines.pop();
            lines.forEach(function (line) {
              if (!line) { return; }
              var msg = JSON.parse(line);
              if (msg.delta !== undefined) {
                at.textContent += msg.delta;
              } else {
                last = msg;
              }
            });
            if (r.done) { finish(last); return; }
            return pump();
          });
        }
        return pump();
      }).catch(function (err) { finish({ error: String(err) }); });
    });
  }

  // ---- Keyboard ------------------------------------------------------------

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // move focuses the next (+1) or previous (-1) of items after the one
  // holding the focus.
  function move(items, step) {
    if (!items.length) { return; }
    var i = items.findIndex(function (el) { return el.contains(document.activeElement); });
    var next = items[Math.max(0, Math.min(items.length - 1, i < 0 ? 0 : i + step))];
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var rows = $all("#inbox-body tr[data-doc-id]");
    var items = $all('[data-testid="feedback-item"]');
    var list = rows.length ? rows : items;
    switch (e.key) {
      case "j": move(list, 1); e.preventDefault(); break;
      case "k": move(list, -1); e.preventDefault(); break;
      case "/": {
        var search = $('input[name="q"]') || $('textarea[name="question"]');
        if (search) { search.focus(); e.preventDefault(); }
        break;
      }
      case "Enter": {
        var row = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr[data-doc-id]");
        var link = row && $("a", row);
        if (link && document.activeElement === row) { link.click(); e.preventDefault(); }
        break;
      }
      case "a":
      case "r": {
        var item = document.activeElement && document.activeElement.closest && document.activeElement.closest('[data-testid="feedback-item"]');
        var btn = item && $('[data-testid="' + (e.key === "a" ? "accept" : "reject") + '"]', item);
        if (btn) { btn.click(); e.preventDefault(); }
        break;
      }
    }
  });

  // An item replaced after a decision keeps the keyboard where it was.
  document.addEventListener("htmx:afterSwap", function (e) {
    var el = e.detail.elt;
    if (el && el.getAttribute && el.getAttribute("data-testid") === "feedback-item" && el.isConnected) { el.focus(); }
  });
})();
