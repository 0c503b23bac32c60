// Keeps the responder desk current while it is open: it follows /v1/replies/stream (the
// session cookie authenticates it) and on each reply event fetches the list (the element's
// data-reply-list-url, same filters) and swaps it in, then says what changed in the polite
// live region. It never swaps while a form in the list holds something typed: the refresh
// (or an open answer box) waits until focus leaves it; answer boxes left open stay open with
// their text. Without JavaScript the page is complete; reload to refresh.
(function () {
  "use strict";
  var region = document.querySelector("[data-reply-list-url]");
  var status = document.getElementById("live-status");
  if (!region || !("EventSource" in window) || !window.fetch) {
    return;
  }
  var words = { created: "New reply", updated: "Reply updated" };
  var busy = false;
  var pending = null;

  function announce(text) {
    if (!status || !text) {
      return;
    }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function typing() {
    var active = document.activeElement;
    if (!active || !region.contains(active)) {
      return false;
    }
    if (active.closest && active.closest("details[open]")) {
      return true;  // writing an answer, even before the first letter
    }
    return (active.tagName === "TEXTAREA" || active.tagName === "INPUT") && active.value !== "";
  }

  function refresh(message) {
    if (busy || typing()) {
      pending = message || pending || "";
      return;
    }
    busy = true;
    fetch(region.getAttribute("data-reply-list-url"), {
      cache: "no-cache",
      headers: { Accept: "text/html" },
      credentials: "same-origin"
    }).then(function (response) {
      if (response.status === 401) {
        window.location.reload();  // the session ended: show the login form
        throw new Error("session ended");
      }
      if (!response.ok) {
        throw new Error("list " + response.status);
      }
      return response.text();
    }).then(function (html) {
      // An answer box the responder opened stays open across the swap, with what was
      // typed in it (focus has left it, or the swap would have waited).
      var open = Array.prototype.map.call(
        region.querySelectorAll("details[open][id]"), function (box) {
          var field = box.querySelector("textarea");
          return { id: box.id, text: field ? field.value : "" };
        });
      // So does a box the responder unticked ("also the other similar reports").
      var unticked = Array.prototype.map.call(
        region.querySelectorAll("input[type=checkbox][id]:not(:checked)"),
        function (box) { return box.id; });
      region.innerHTML = html;
      unticked.forEach(function (id) {
        var box = document.getElementById(id);
        if (box && region.contains(box)) {
          box.checked = false;
        }
      });
      open.forEach(function (kept) {
        var box = document.getElementById(kept.id);
        if (box && region.contains(box)) {
          box.open = true;
          var field = box.querySelector("textarea");
          if (field && kept.text) {
            field.value = kept.text;
          }
        }
      });
      announce(message);
    }).catch(function () {
      // The next event, or the reconnect, tries again; the list stays as it was.
    }).then(function () {
      busy = false;
      document.documentElement.setAttribute("data-live-refreshed", String(Date.now()));
      if (pending !== null && !typing()) {
        var next = pending;
        pending = null;
        refresh(next);
      }
    });
  }

  region.addEventListener("focusout", function () {
    window.setTimeout(function () {
      if (pending !== null && !typing()) {
        var next = pending;
        pending = null;
        refresh(next);
      }
    }, 0);
  });

  var source = new EventSource("/v1/replies/stream");
  var opened = false;
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
    if (opened) {
      refresh("");  // reconnected: catch up on whatever happened meanwhile
    }
    opened = true;
  });
  source.addEventListener("reply", function (event) {
    var message = "Replies changed.";
    try {
      var data = JSON.parse(event.data);
      message = (words[data.event] || "Reply changed") + " " + data.id +
        (data.categories && data.categories.length ? " (" + data.categories.join(", ") + ")" : "") +
        // An older page does not list new replies: say where this one is.
        (data.event === "created" && region.hasAttribute("data-paged") ? ", on the newest page" : "") +
        ".";
    } catch (ignored) {
      // keep the general message
    }
    refresh(message);
  });
}());
