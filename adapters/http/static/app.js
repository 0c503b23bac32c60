// Keeps a public page current while it is open: on each event of the public stream it fetches
// the page's live fragment (the element's data-live-url, same query) and swaps it in, then
// says what changed in the polite live region. Without JavaScript the page is complete as is.
(function () {
  "use strict";
  var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-url]"));
  var status = document.getElementById("live-status");
  if (!regions.length || !("EventSource" in window) || !window.fetch) {
    return;
  }
  var words = { created: "New alert", updated: "Alert updated", cancelled: "Alert cancelled" };
  var last = new Map();
  var busy = false;
  var again = null;

  function announce(text) {
    if (!status || !text) {
      return;
    }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function fetchRegion(region) {
    return fetch(region.getAttribute("data-live-url"), {
      cache: "no-cache",
      headers: { Accept: "text/html" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("fragment " + response.status);
      }
      return response.text();
    }).then(function (html) {
      if (last.get(region) === html) {
        return false;
      }
      last.set(region, html);
      region.innerHTML = html;
      return true;
    });
  }

  function refresh(message) {
    if (busy) {
      again = message || again || "";
      return;
    }
    busy = true;
    Promise.all(regions.map(fetchRegion)).then(function (changed) {
      if (changed.some(Boolean)) {
        announce(message);
      }
    }).catch(function () {
      // The next event, or the reconnect, tries again; the page stays as it was.
    }).then(function () {
      busy = false;
      document.documentElement.setAttribute("data-live-refreshed", String(Date.now()));
      if (again !== null) {
        var next = again;
        again = null;
        refresh(next);
      }
    });
  }

  var source = new EventSource("/v1/stream");
  var opened = false;
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live", "connected");
    if (opened) {
      refresh("");  // reconnected: catch up on whatever happened meanwhile
    }
    opened = true;
  });
  source.addEventListener("alert", function (event) {
    var message = "Alerts changed.";
    try {
      var data = JSON.parse(event.data);
      message = (words[data.kind] || "Alert changed") + (data.headline ? ": " + data.headline : ".");
    } catch (ignored) {
      // keep the general message
    }
    refresh(message);
  });
}());
