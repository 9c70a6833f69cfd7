/* Idle sign-out, seen from the page (apps/accounts/middleware.py signs a session out after the
   organization's idle limit, data-idle-seconds on <body>).
   - Typing or pointing counts as activity: at most once a minute, and only after such input, the
     page tells the server (POST data-activity-url), so a long note is not lost to the sign-out.
   - Before the limit, a notice warns and offers to stay signed in.
   - Past it, or when the server answers that the session has ended, the notice says so and that
     what was typed is still on the page. Nothing is sent without input: a page left alone is
     signed out as the organization requires. */
(function () {
  "use strict";
  var body = document.body;
  var limit = parseInt(body.dataset.idleSeconds || "0", 10) * 1000;
  var url = body.dataset.activityUrl;
  var notice = document.getElementById("idle-notice");
  var csrf = document.querySelector("form.signout input[name=csrfmiddlewaretoken]");
  if (!limit || !url || !notice || !csrf) { return; }
  var warning = notice.querySelector("[data-idle=warning]");
  var ended = notice.querySelector("[data-idle=ended]");
  var PING_EVERY = 60000;
  var warnBefore = Math.min(120000, limit / 4);
  var contact = Date.now();   // the server last counted activity (page load, or a ping)
  var input = false;          // input since the last ping
  var over = false;

  function show(which) {
    notice.hidden = false;
    warning.hidden = which !== warning;
    ended.hidden = which !== ended;
  }

  function end() {
    over = true;
    show(ended);
  }

  function ping() {
    input = false;
    var sent = Date.now();
    var form = new FormData();
    form.append("csrfmiddlewaretoken", csrf.value);
    return fetch(url, { method: "POST", body: form, credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.status === 204) {
          contact = sent;
          if (!over) { notice.hidden = true; }
        } else {
          end();  // a redirect to the sign-in page: the session had already ended
        }
      })
      .catch(function () { /* offline: the next input tries again */ input = true; });
  }

  // any other request of this page to the server (an upload's chunks, the viewer's frames) is
  // activity there too: an upload running for an hour keeps the session, so no false notice
  if (window.PerformanceObserver) {
    try {
      new PerformanceObserver(function (list) {
        list.getEntries().forEach(function (entry) {
          var path = new URL(entry.name, location.href);
          if (path.origin === location.origin && path.pathname.indexOf("/static/") !== 0 && !over) {
            contact = Date.now();  // just after it ended; the same clock as the rest here
          }
        });
        performance.clearResourceTimings();
      }).observe({ type: "resource" });
    } catch (e) { /* an old browser: input alone counts */ }
  }

  ["keydown", "input", "pointerdown", "wheel"].forEach(function (name) {
    document.addEventListener(name, function () { input = true; }, { passive: true, capture: true });
  });
  notice.querySelector("[data-idle=stay]").addEventListener("click", function () { ping(); });

  window.setInterval(function () {
    if (over) { return; }
    var now = Date.now();
    if (now - contact >= limit) { end(); return; }
    if (input && now - contact >= PING_EVERY) { ping(); return; }
    if (now - contact >= limit - warnBefore) { show(warning); }
  }, 5000);
})();
