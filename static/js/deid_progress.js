/* A running de-identified export's progress, updated in place (templates/deid/export_detail.html).
   The page used to reload itself every 3 s (<meta http-equiv="refresh">), which reset the reader's
   place and focus each time. Here the section with data-status-url polls that JSON
   (apps.deid.views.export_status) every data-poll-seconds and changes only the text and values
   of its data-deid parts: the state badge, the progress bar, the counts and the role="status"
   message (that one only when the state changes, so a screen reader hears each state once, not
   each poll). When the export is finished the page is loaded once, with its result (download,
   reason or report). Without JavaScript the section's Refresh link does it by hand.
   - Each poll is a request, and requests keep the session (apps/accounts/middleware.py): the
     polls pause once the page has seen no input for half of the idle limit (data-idle-seconds
     on <body>), so a page left alone is still signed out; the next input resumes them.
   - A refusal or a sign-out (403, 404, a redirect to the sign-in page) stops the polls; a
     server or network error retries, slower. */
(function () {
  "use strict";
  var section = document.querySelector("[data-status-url]");
  if (!section || !window.fetch) { return; }
  var url = section.dataset.statusUrl;
  var every = Math.max(2, parseInt(section.dataset.pollSeconds, 10) || 3) * 1000;
  var idleLimit = parseInt(document.body.dataset.idleSeconds || "0", 10) * 1000;
  var text = section.dataset;
  var stateBadge = document.querySelector("[data-deid=state]");
  var lastInput = Date.now();
  var paused = false;
  var stopped = false;
  var state = null;

  function part(name) { return section.querySelector("[data-deid=" + name + "]"); }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : whole;
    });
  }

  function setText(element, value) {
    if (element && element.textContent !== value) { element.textContent = value; }
  }

  function show(status) {
    var bar = part("progress");
    if (bar && String(bar.value) !== String(status.percent)) {
      bar.value = status.percent;
      bar.textContent = status.percent + "%";
    }
    setText(part("processed"), fill(text.textProcessed, { done: status.files_done, total: status.files_total }));
    setText(part("exported"), fill(text.textExported, { n: status.files_exported }));
    setText(part("excluded"), fill(text.textExcluded, { n: status.files_excluded }));
    setText(part("bytes"), status.bytes_label);
    if (stateBadge) {
      setText(stateBadge, status.state_label);
      stateBadge.className = stateBadge.className.replace(/\bstate-\S+/, "state-" + status.state);
    }
    if (status.state !== state) {   // the live region speaks on a change of state only
      state = status.state;
      setText(part("message"), status.finished ? text.textFinished : fill(text.textRunning, { state: status.state_label }));
    }
  }

  function later(delay) {
    if (stopped) { return; }
    if (idleLimit && Date.now() - lastInput >= idleLimit / 2) { paused = true; return; }
    window.setTimeout(poll, delay);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (response) {
        var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (response.ok && json && !response.redirected) {
          return response.json().then(function (status) {
            show(status);
            if (status.finished) {
              stopped = true;
              window.location.reload();   // once: the result and the per-image report
            } else {
              later(every);
            }
          });
        }
        if (response.status >= 500) { later(every * 4); return; }
        stopped = true;   // refused, gone, or signed out: the Refresh link shows what the server says
      })
      .catch(function () { later(every * 4); });   // offline for a moment
  }

  ["keydown", "pointerdown", "wheel", "input", "focusin"].forEach(function (name) {
    document.addEventListener(name, function () {
      lastInput = Date.now();
      if (paused && !stopped) { paused = false; poll(); }
    }, { passive: true, capture: true });
  });
  window.setTimeout(poll, every);
})();
