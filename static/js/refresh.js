/* A page whose work is still running (data-refresh-every="<seconds>" on an element with an id)
   fetches itself again at that pace and replaces only that element's content, so the reader's
   place and focus stay where they are (a <meta http-equiv="refresh"> reloaded the whole page
   every few seconds). When the fresh copy no longer asks to refresh, the whole page is loaded
   once, with what the finished state offers. Without JavaScript the element's own "Refresh"
   link does it by hand. */
(function () {
  "use strict";
  var part = document.querySelector("[data-refresh-every][id]");
  if (!part || !window.fetch || !window.DOMParser) { return; }
  var every = Math.max(2, parseInt(part.dataset.refreshEvery, 10) || 3) * 1000;
  function again() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { window.setTimeout(again, every * 2); return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(part.id);
        if (!fresh || !fresh.hasAttribute("data-refresh-every")) { window.location.reload(); return; }
        part.innerHTML = fresh.innerHTML;
        window.setTimeout(again, every);
      })
      .catch(function () { window.setTimeout(again, every * 2); });
  }
  window.setTimeout(again, every);
})();
