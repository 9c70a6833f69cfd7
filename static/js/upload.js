/* Upload page: drag and drop files, folders or zips; each file is a resumable tus upload
   (tus-js-client, served by the app). Resumes after a dropped connection (retries) or a page
   reload (fingerprints in localStorage: choose the same file again). After the last byte the
   server ingests the file; this page polls the upload's status for the per-file report, and then,
   while a line names a study still receiving or processing, asks for the studies' states. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.tus) { return; }
  var endpoint = form.getAttribute("data-endpoint");
  // the signed-in user's public id (never an e-mail or a name): each upload's entry in
  // localStorage carries it as `owner`, so a later user of this browser (a session ended by
  // closing it, with no sign-out to clear the site's data) neither sees nor resumes it
  var owner = form.getAttribute("data-owner") || "";
  function ours(metadata) { return !!owner && !!metadata && String(metadata.owner || "") === owner; }
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var strings = document.getElementById("upload-strings").dataset;
  var list = document.getElementById("upload-list");
  var overall = document.getElementById("upload-overall");
  var bar = document.getElementById("upload-progress");
  var percent = document.getElementById("upload-percent");
  var pauseBtn = document.getElementById("upload-pause");
  var resumeBtn = document.getElementById("upload-resume");
  var zone = document.getElementById("dropzone");
  var recent = document.querySelector("[data-testid=recent-uploads]");
  var items = [];
  // as the bench's tuspy client (bench/ingest/harness.py): the server streams each PATCH body
  // from the connection into the encrypted staging file (apps/imaging/asgi.py), never whole in
  // memory nor in clear on disk, and keeps what arrived when a connection drops mid-chunk
  // (LIGHTBOX_UPLOAD_CHUNK_BYTES, 16 MiB unless set lower for a proxy that limits request bodies)
  var CHUNK = parseInt(form.getAttribute("data-chunk-bytes"), 10) || 16 * 1024 * 1024;

  function text(el, value) { el.textContent = value; }
  // a translated text's placeholder replaced by a value taken as it is ("$&" in a case's title too)
  function fill(template, placeholder, value) { return template.replace(placeholder, function () { return value; }); }

  function statusOf(error) {
    var response = error && error.originalResponse;
    return response ? response.getStatus() : 0;
  }
  // a 4xx is the server's refusal, which sending again cannot change; but for 409 (the offsets
  // differ: resume from the server's) and 423 (another request is still writing the upload)
  function refused(status) { return status >= 400 && status < 500 && status !== 409 && status !== 423; }
  // the browser knows it has no connection (navigator.onLine): nothing can be sent until the
  // `online` event, so an upload waits for it rather than failing (tus-js-client's retries give
  // up at once while offline)
  function offline() { return window.navigator.onLine === false; }

  // why an upload stopped, from the server's answer where there is one: a file over the
  // organization's limit, a closed case or a refusal will not go through by trying again, a
  // sign-out needs a sign-in first; anything else (a connection gone after the retries) resumes
  // later. The tus server's texts are in the reader's language, so the page goes by codes: the
  // Lightbox-Refusal header (apps/imaging/tus.py Refusal), the JSON of the access gate and of the
  // CSRF check; another refusal (a 4xx: an unknown case, say, one deleted since the page was
  // loaded) shows the server's plain text reason, and no resuming
  var REFUSALS = {
    "signed_out": strings.signedOut, "case_closed": strings.caseClosed, "case_forbidden": strings.caseForbidden,
    "too_large": strings.tooLarge, "over_length": strings.overLength
  };
  function failure(error) {
    var response = error && error.originalResponse;
    var status = response ? response.getStatus() : 0;
    var body = response ? String(response.getBody() || "") : "";
    var refusal = response ? String(response.getHeader("Lightbox-Refusal") || "") : "";
    if (Object.prototype.hasOwnProperty.call(REFUSALS, refusal)) { return REFUSALS[refusal]; }
    if (status === 403 && /signed_out|CSRF|csrf_failed|otp_required|mfa_|recovery_codes/.test(body)) {
      return strings.signedOut;
    }
    if (status === 403) { return strings.forbidden; }
    if (refused(status)) {
      var plain = /^text\/plain/.test(String(response.getHeader("Content-Type") || ""));
      var reason = plain && body.trim().length <= 300 ? body.trim() : "";
      return fill(strings.refused, "{reason}", reason || "HTTP " + status);
    }
    return strings.failed;
  }

  function updateOverall() {
    var total = 0, sent = 0;
    items.forEach(function (it) { total += it.file.size; sent += it.sent; });
    overall.hidden = items.length === 0;
    var p = total ? Math.floor(100 * sent / total) : 100;
    bar.value = p;
    text(percent, p + "%");
    var active = items.some(function (it) { return it.state === "uploading" || it.state === "offline"; });
    // a failed upload (not a refused one) resumes from where the server stands
    var resumable = items.some(function (it) { return it.state === "paused" || it.state === "failed"; });
    pauseBtn.disabled = !active;
    resumeBtn.disabled = !resumable;
  }

  function span(testid, value) {
    var el = document.createElement("span");
    el.setAttribute("data-testid", testid);
    text(el, value);
    return el;
  }

  // a study's link, as the page lists it: its description and, in brackets, its state (and its
  // number of images, in a file's report): each in its own element, which a later answer of the
  // server brings up to date (watchStates)
  function studyLink(s, withImages) {
    var a = document.createElement("a");
    a.href = s.url;
    if (s.id) { a.setAttribute("data-study", s.id); }
    a.appendChild(document.createTextNode((s.description || strings.untitled) + " ("));
    var state = document.createElement("span");
    state.setAttribute("data-study-state", s.state || "");
    text(state, s.state_label);
    a.appendChild(state);
    if (withImages) {
      a.appendChild(document.createTextNode(", "));
      var count = document.createElement("span");
      count.setAttribute("data-study-images", "");
      text(count, s.instances_label || String(s.instances));
      a.appendChild(count);
    }
    a.appendChild(document.createTextNode(")"));
    return a;
  }

  // a finished upload joins "Your recent uploads" at once, as the page lists it reloaded
  // (templates/imaging/upload.html): its source, outcome, report and studies, a study in no case
  // with the badge that says where to attach it
  function addRecent(it, job) {
    if (!recent || it.listed) { return; }
    it.listed = true;
    var empty = recent.querySelector("[data-empty]");
    if (empty) { recent.removeChild(empty); }
    var li = document.createElement("li");
    li.setAttribute("data-testid", "recent-upload");
    if (job.id) { li.setAttribute("data-job", job.id); }
    var outcome = span("job-outcome", job.state_label);
    outcome.setAttribute("data-outcome", job.outcome || job.state);
    li.appendChild(document.createTextNode(strings.justNow + " · "));
    li.appendChild(span("job-source", it.name));
    li.appendChild(document.createTextNode(" · "));
    li.appendChild(outcome);
    if (job.report_url) {
      li.appendChild(document.createTextNode(" · "));
      var report = document.createElement("a");
      report.href = job.report_url;
      report.setAttribute("data-testid", "job-report");
      text(report, strings.perFileReport);
      li.appendChild(report);
    }
    (job.studies || []).forEach(function (s) {
      li.appendChild(document.createTextNode(" · "));
      li.appendChild(studyLink(s, false));
      if (s.in_case === false) {
        li.appendChild(document.createTextNode(" "));
        var badge = span("no-case", strings.inNoCase);
        badge.className = "badge";
        li.appendChild(badge);
      }
    });
    if (job.failure) { li.appendChild(failureNote(job.failure, "help")); }
    recent.insertBefore(li, recent.firstChild);
    watchStates();
  }

  // a job that failed as a whole: why, and what can be done (the server's words, in the
  // reader's language, chosen by the type of error: apps.imaging.models.FAILURE_MESSAGES)
  function failureNote(failure, className) {
    var p = document.createElement("p");
    p.className = className;
    p.setAttribute("data-testid", "job-failure");
    p.setAttribute("data-code", failure.code);
    text(p, failure.message);
    return p;
  }

  function showReport(it, data) {
    var job = data.job;
    if (!job) { return false; }
    text(it.status, job.state_label);
    it.report.textContent = "";
    if (it.failureNote) { it.failureNote.remove(); it.failureNote = null; }
    if (job.failure) {
      it.failureNote = failureNote(job.failure, "job-failure");
      it.report.parentNode.insertBefore(it.failureNote, it.report);
    }
    (job.studies || []).forEach(function (s) {
      var li = document.createElement("li");
      li.appendChild(studyLink(s, true));
      it.report.appendChild(li);
      // the page's other lines naming this study say what this newer answer does: another file's
      // line said "Ready, 3 images" of a study this file had added to since (found by QA)
      applyStudy(s);
    });
    // the lines that say something, in the server's order (apps.imaging.selectors.SEVERITIES:
    // problems, warnings, notes), as the report page lists them; a file ingested with nothing to
    // say ("ok") is left to that page
    var files = job.files || [];
    files.forEach(function (f) {
      if (f.severity === "ok" || !f.reason) { return; }
      var li = document.createElement("li");
      li.setAttribute("data-testid", "report-line");
      li.setAttribute("data-severity", f.severity || "");
      li.textContent = f.path + ": " + f.outcome_label + " — " + (f.reason_label || f.reason);
      it.report.appendChild(li);
    });
    // the status carries the first lines only (apps.imaging.tus.STATUS_FILES): say so, and lead
    // to the report page, which lists them all
    if (job.files_count > files.length) {
      var cut = document.createElement("li");
      cut.setAttribute("data-testid", "report-cut");
      var lang = document.documentElement.lang || undefined;
      text(cut, fill(fill(strings.reportCut, "{shown}", files.length.toLocaleString(lang)), "{total}",
                     Number(job.files_count).toLocaleString(lang)) + " ");
      if (job.report_url) {
        var full = document.createElement("a");
        full.href = job.report_url;
        full.setAttribute("data-testid", "report-cut-link");
        text(full, strings.fullReport);
        cut.appendChild(full);
      }
      it.report.appendChild(cut);
    }
    var done = job.state !== "queued" && job.state !== "running";
    if (done) {
      // its polling ends here: its studies' states are asked for from now on (watchStates)
      if (job.id) { it.report.setAttribute("data-job", job.id); }
      addRecent(it, job);
      watchStates();
    }
    return done;
  }

  function poll(it) {
    fetch(it.upload.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !showReport(it, data)) { window.setTimeout(function () { poll(it); }, 1500); }
      })
      .catch(function () { window.setTimeout(function () { poll(it); }, 3000); });
  }

  // one file at a time: the connection's bandwidth goes to one upload, which then finishes
  var queue = [];
  var busy = false;

  function next() {
    if (busy || !queue.length) { return; }
    var it = queue.shift();
    busy = true;
    if (it.upload.url) { send(it); return; }  // begun on this page: resumed where the server stands
    it.upload.findPreviousUploads().then(function (previous) {
      // only an upload of this file begun into the case chosen now: the server files the study
      // into the case named when the upload was created, so one begun into another case (or
      // into none) is not resumed but left to expire, and this one starts anew
      // and only the signed-in user's own
      previous = previous.filter(function (p) {
        return ours(p.metadata) && String((p.metadata || {})["case"] || "") === it.caseId;
      });
      if (previous.length) { it.upload.resumeFromPreviousUpload(previous[0]); }
      send(it);
    });
  }

  function send(it) {
    it.state = "uploading";
    it.droppedOffline = false;
    text(it.status, " " + strings.uploading);
    it.upload.start();
    updateOverall();
  }

  // the connection is gone: the upload keeps its turn and resumes when it is back
  function waitOnline(it) {
    it.state = "offline";
    text(it.status, " " + strings.offline);
    updateOverall();
  }

  function finished() { busy = false; next(); }

  function start(it) { queue.push(it); next(); }

  function add(file, path) {
    var li = document.createElement("li");
    li.className = "upload-item";
    li.setAttribute("data-testid", "upload-item");
    var name = document.createElement("span");
    name.className = "mono";
    text(name, path || file.name);
    var select = document.getElementById("upload-case");
    var caseId = select.value;
    // which case this upload goes into, as chosen when the file was (the select may change later)
    var into = document.createElement("span");
    into.setAttribute("data-testid", "upload-case");
    text(into, caseId ? fill(strings.intoCase, "{case}", select.options[select.selectedIndex].text) : strings.noCase);
    var status = document.createElement("span");
    text(status, " " + strings.waiting);
    var progress = document.createElement("progress");
    progress.max = 100; progress.value = 0;
    progress.setAttribute("aria-label", path || file.name);
    var report = document.createElement("ul");
    report.className = "report";
    li.appendChild(name); li.appendChild(document.createTextNode(" · ")); li.appendChild(into);
    li.appendChild(document.createTextNode(" · ")); li.appendChild(status);
    li.appendChild(progress); li.appendChild(report);
    list.appendChild(li);
    var it = { file: file, name: path || file.name, sent: 0, state: "waiting", status: status, progress: progress,
               report: report, caseId: caseId };
    it.upload = new window.tus.Upload(file, {
      endpoint: endpoint,
      chunkSize: CHUNK,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      headers: { "X-CSRFToken": csrf },
      metadata: { filename: path || file.name, filetype: file.type || "application/octet-stream", "case": caseId,
                  owner: owner },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      // retryDelays are for a server's hiccup (a 5xx, a 409, a 423, a connection reset); offline,
      // the upload waits for the connection instead (onError)
      onShouldRetry: function (error) {
        if (offline()) { it.droppedOffline = true; return false; }
        return !refused(statusOf(error));
      },
      onProgress: function (sent, total) {
        it.sent = sent;
        it.progress.value = total ? Math.floor(100 * sent / total) : 100;
        // every byte sent: the server has the file and ingests it (its answer, then the job's
        // progress, follow), so the page no longer says "Uploading" (found by QA: 100 % and
        // "Uploading" for half a minute read as a page that hung); a retry that sends again
        // says "Uploading" again
        if (it.state === "uploading") {
          var now = " " + (total && sent >= total ? strings.processing : strings.uploading);
          if (it.status.textContent !== now) { text(it.status, now); }
        }
        updateOverall();
      },
      onError: function (error) {
        if (!statusOf(error) && (it.droppedOffline || offline())) {
          if (offline()) { waitOnline(it); } else { send(it); }  // back already
          return;
        }
        var why = failure(error);
        // refused (a 4xx, or a reason the page names): resuming cannot help, so it is not offered
        it.state = refused(statusOf(error)) || why !== strings.failed ? "refused" : "failed";
        text(it.status, " " + why); updateOverall(); finished();
      },
      onSuccess: function () {
        it.state = "done"; it.sent = file.size; it.progress.value = 100;
        showInterrupted();  // resumed and finished here: no longer interrupted
        text(it.status, " " + strings.processing);
        updateOverall();
        poll(it);
        finished();
      }
    });
    items.push(it);
    start(it);
  }

  // a folder brings the operating system's own files along (.DS_Store, AppleDouble ._*, Thumbs.db,
  // desktop.ini, anything in a dot-folder): each would be an upload that imports nothing. They
  // are left out of a folder, chosen or dropped, and counted in one quiet line; a file chosen
  // (or dropped) by itself is always sent. The path's first part is the chosen (or dropped)
  // folder's own name, which the user picked: a folder named ".export" is not the system's.
  var SYSTEM_NAMES = /^(thumbs\.db|ehthumbs\.db|desktop\.ini)$/i;
  function systemFile(path) {
    var parts = String(path).split("/");
    if (parts.length > 1) { parts = parts.slice(1); }
    return parts.some(function (part, i) {
      return part.charAt(0) === "." || (i === parts.length - 1 && SYSTEM_NAMES.test(part));
    });
  }
  var skippedNote = document.getElementById("upload-skipped");
  // one line per folder chosen or dropped: the last one's count
  function skipper() {
    var batch = { count: 0, names: [] };
    skippedNote.hidden = true;
    return function (path) {
      var base = String(path).split("/").pop();
      batch.count += 1;
      if (batch.names.indexOf(base) < 0) { batch.names.push(base); }
      var shown = batch.names.slice(0, 2).join(", ") + (batch.names.length > 2 ? ", …" : "");
      var template = batch.count === 1 ? strings.skippedOne : strings.skippedMany;
      text(skippedNote, fill(fill(template, "{n}", String(batch.count)), "{names}", shown));
      skippedNote.hidden = false;
    };
  }
  // a file of a folder: sent, or counted as skipped when it is the system's
  function addFromFolder(file, path, skip) {
    if (systemFile(path)) { skip(path); } else { add(file, path); }
  }

  function readEntry(entry, prefix, skip) {
    if (entry.isFile) {
      entry.file(function (f) {
        // at the top of the drop, the file was chosen by itself
        if (prefix) { addFromFolder(f, prefix + f.name, skip); } else { add(f, f.name); }
      });
    } else if (entry.isDirectory) {
      var reader = entry.createReader();
      var readAll = function () {
        reader.readEntries(function (entries) {
          if (!entries.length) { return; }
          entries.forEach(function (e) { readEntry(e, prefix + entry.name + "/", skip); });
          readAll();
        });
      };
      readAll();
    }
  }

  // A file's line names its study's state when that file's ingest ended; the next file's ingest
  // may still be adding to the same study (Processing), which becomes Ready (or Ready with
  // warnings, or Failed) afterwards; a page loaded during an ingest names the upload Processing.
  // While a line of the page names a study still receiving or processing, or an upload of "Your
  // recent uploads" still queued or running, the page asks the server for their states
  // (imaging:upload_states: states, their labels and the studies' addresses, no name), one upload
  // per such study, and brings each line's state and link up to date. It asks after FIRST_WAIT,
  // then less and less often (up to LONGEST_WAIT), and stops when none is left, while the page is
  // hidden (it asks at once when it is shown again) and when it is left; not at all when nothing
  // is pending. An upload the server no longer answers for (404: another organization chosen
  // since, say) is not asked about again; a refusal of the page itself (signed out, 403) stops it.
  var statesUrl = recent ? recent.getAttribute("data-states-url") || "" : "";
  var PENDING_STUDY = ["receiving", "processing"], PENDING_JOB = ["queued", "running"];
  var FIRST_WAIT = 3000, LONGEST_WAIT = 30000, STATES_MAX = 50;
  var stateWait = FIRST_WAIT, stateTimer = null, stateAsking = false, stateStopped = false;
  var unanswered = {};  // uploads not asked about again

  function each(root, selector, fn) { Array.prototype.forEach.call(root.querySelectorAll(selector), fn); }

  // the uploads to ask about: for each study still pending, one upload of a line naming it (its
  // answer names the study for every line); each upload of "Your recent uploads" still pending
  function pendingUploads() {
    var jobs = [], studies = {};
    function want(id) { if (id && !unanswered[id] && jobs.indexOf(id) < 0) { jobs.push(id); } }
    each(document, "[data-study] [data-study-state]", function (state) {
      if (PENDING_STUDY.indexOf(state.getAttribute("data-study-state")) < 0) { return; }
      var study = state.closest("[data-study]").getAttribute("data-study");
      var line = state.closest("[data-job]");
      var job = line ? line.getAttribute("data-job") : "";
      if (!job || unanswered[job] || studies[study]) { return; }
      studies[study] = true;
      want(job);
    });
    if (recent) {
      each(recent, "[data-job] [data-testid=job-outcome]", function (outcome) {
        if (PENDING_JOB.indexOf(outcome.getAttribute("data-outcome")) >= 0) {
          want(outcome.closest("[data-job]").getAttribute("data-job"));
        }
      });
    }
    return jobs;
  }

  // every line naming the study ``s`` (an answer of the server's: its state, address and the
  // number of images it holds now) says so, whichever upload's line it is
  function applyStudy(s) {
    if (!s.id) { return; }
    each(document, "[data-study=\"" + s.id + "\"]", function (a) {
      if (s.url && a.getAttribute("href") !== s.url) { a.href = s.url; }
      var state = a.querySelector("[data-study-state]");
      if (state) { state.setAttribute("data-study-state", s.state); text(state, s.state_label); }
      var count = a.querySelector("[data-study-images]");
      if (count) { text(count, s.instances_label || String(s.instances)); }
    });
  }

  function applyStates(data, asked) {
    var answered = {};
    (data.studies || []).forEach(function (s) {
      answered[s.id] = true;
      applyStudy(s);
    });
    // a study its upload no longer names (deleted since): nothing to wait for, its line left as it is
    asked.forEach(function (job) {
      each(document, "[data-job=\"" + job + "\"] [data-study]", function (a) {
        var state = a.querySelector("[data-study-state]");
        if (!answered[a.getAttribute("data-study")] && state) { state.setAttribute("data-study-state", ""); }
      });
    });
    (data.jobs || []).forEach(function (job) {
      if (!recent) { return; }
      each(recent, "[data-job=\"" + job.id + "\"]", function (li) {
        var outcome = li.querySelector("[data-testid=job-outcome]");
        if (outcome) { outcome.setAttribute("data-outcome", job.outcome || job.state); text(outcome, job.state_label); }
        if (job.failure && !li.querySelector("[data-testid=job-failure]")) { li.appendChild(failureNote(job.failure, "help")); }
      });
    });
  }

  function askStates() {
    stateTimer = null;
    if (stateStopped || document.hidden) { return; }
    var jobs = pendingUploads();
    if (!jobs.length) { stateWait = FIRST_WAIT; return; }
    var batches = [];
    for (var i = 0; i < jobs.length; i += STATES_MAX) { batches.push(jobs.slice(i, i + STATES_MAX)); }
    stateAsking = true;
    Promise.all(batches.map(function (batch) {
      var query = batch.map(function (id) { return "job=" + encodeURIComponent(id); }).join("&");
      return fetch(statesUrl + "?" + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          // signed out (sent to the sign-in page), or no longer allowed: nothing changes until a reload
          if (r.redirected || r.status === 401 || r.status === 403) { stateStopped = true; return; }
          if (r.status === 404 || r.status === 400) {
            batch.forEach(function (id) { unanswered[id] = true; });
            return;
          }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json().then(function (data) { applyStates(data, batch); });
        });
    }))
      .then(function () { stateWait = Math.min(Math.round(stateWait * 1.5), LONGEST_WAIT); },
            function () { stateWait = Math.min(stateWait * 2, LONGEST_WAIT); })
      .then(function () { stateAsking = false; scheduleStates(stateWait); });
  }

  function scheduleStates(delay) {
    if (!statesUrl || stateStopped || stateAsking || stateTimer !== null || document.hidden) { return; }
    if (!pendingUploads().length) { stateWait = FIRST_WAIT; return; }
    stateTimer = window.setTimeout(askStates, delay);
  }

  // a line listed anew: asked about soon, whatever the wait had grown to
  function watchStates() {
    if (stateTimer !== null) { window.clearTimeout(stateTimer); stateTimer = null; }
    stateWait = FIRST_WAIT;
    scheduleStates(stateWait);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (stateTimer !== null) { window.clearTimeout(stateTimer); stateTimer = null; }
    } else {
      stateWait = FIRST_WAIT;
      scheduleStates(0);
    }
  });
  window.addEventListener("pagehide", function () {
    stateStopped = true;
    if (stateTimer !== null) { window.clearTimeout(stateTimer); stateTimer = null; }
  });
  // back to the page from the browser's history, as it was left: asked again
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) { stateStopped = false; stateWait = FIRST_WAIT; scheduleStates(0); }
  });
  scheduleStates(stateWait);

  // whom a study uploaded into the chosen case reaches (its shares on the whole case, its tumor
  // boards), in the attach page's words: the server's fragment for the case chosen, shown under
  // the box (found by QA: a study uploaded into a shared case reached its patient and its
  // consultants at once, with no word before). Rendered with the page for a case chosen from its
  // page; fetched again when the choice changes, the latest choice's answer kept
  var caseSelect = document.getElementById("upload-case");
  var reachBox = document.getElementById("upload-case-reach");
  var reachAsked = 0;
  function showReach(html) {
    reachBox.innerHTML = html;
    reachBox.hidden = !html.trim();
    reachBox.classList.toggle("message-warning",
                              !!reachBox.querySelector("[data-testid=attach-reaches], [data-testid=attach-boards]"));
  }
  function askReach() {
    var chosen = caseSelect.value, asked = ++reachAsked;
    reachBox.setAttribute("data-case", chosen);
    if (!chosen) { showReach(""); return; }
    fetch(reachBox.getAttribute("data-url") + "?case=" + encodeURIComponent(chosen),
          { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .catch(function () { return ""; })
      .then(function (html) { if (asked === reachAsked) { showReach(html); } });
  }
  if (caseSelect && reachBox) {
    caseSelect.addEventListener("change", askReach);
    // the browser may bring back another choice than the page was made with (back, reload)
    if (caseSelect.value !== (reachBox.getAttribute("data-case") || "")) { askReach(); }
  }

  document.getElementById("upload-files").addEventListener("change", function (e) {
    Array.prototype.forEach.call(e.target.files, function (f) { add(f, f.name); });
    e.target.value = "";
  });
  document.getElementById("upload-folder").addEventListener("change", function (e) {
    var skip = skipper();
    Array.prototype.forEach.call(e.target.files, function (f) {
      addFromFolder(f, f.webkitRelativePath || f.name, skip);
    });
    e.target.value = "";
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("dragover"); });
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("dragover"); });
  zone.addEventListener("drop", function (e) {
    e.preventDefault();
    zone.classList.remove("dragover");
    var dt = e.dataTransfer;
    if (dt.items && dt.items.length && dt.items[0].webkitGetAsEntry) {
      var skip = skipper();
      Array.prototype.forEach.call(dt.items, function (item) {
        var entry = item.webkitGetAsEntry();
        if (entry) { readEntry(entry, "", skip); }
      });
    } else {
      Array.prototype.forEach.call(dt.files, function (f) { add(f, f.name); });
    }
  });
  // uploads interrupted on an earlier visit (a reload, a closed tab): tus-js-client keeps each
  // one's address, file name and case in localStorage ("tus::<fingerprint>::<n>") until it
  // finishes; the page names them, so they are not forgotten, and offers to forget them: their
  // entries go and the server's uploads are terminated (DELETE). Read once at load: an upload
  // begun on this page is not an interrupted one. Only the signed-in user's entries are named
  // (and resumed, and forgotten); any other (another user's, one with no owner, one unreadable)
  // is removed at once, unseen.
  var interruptedBox = document.getElementById("upload-interrupted");
  var interrupted = [];
  function storage() {
    try { return window.localStorage; } catch (e) { return null; }
  }
  function readInterrupted() {
    var store = storage();
    if (!store) { return []; }
    var found = [], others = [];
    for (var i = 0; i < store.length; i++) {
      var key = store.key(i);
      if (!key || key.indexOf("tus::") !== 0) { continue; }
      var value = null;
      try { value = JSON.parse(store.getItem(key)); } catch (e) { value = null; }
      if (!value || !ours(value.metadata)) { others.push(key); continue; }
      var name = value && value.metadata && value.metadata.filename;
      found.push({ key: key, name: name ? String(name) : key.split("::")[1] || key,
                   url: value && value.uploadUrl ? String(value.uploadUrl) : "" });
    }
    others.forEach(function (key) { try { store.removeItem(key); } catch (e) { /* nothing kept */ } });
    return found;
  }
  // an upload of this portal's tus endpoint (same origin, its path under the endpoint's): the
  // only address Forget sends a DELETE to
  function tusUpload(url) {
    try {
      var here = window.location.href;
      var target = new URL(url, here), root = new URL(endpoint, here);
      var base = root.pathname.replace(/\/?$/, "/");
      return !!url && target.origin === window.location.origin && target.pathname.indexOf(base) === 0 &&
        target.pathname.length > base.length;
    } catch (e) { return false; }
  }
  function inUse(entry) {
    return items.some(function (it) { return it.upload.url && it.upload.url === entry.url && it.state !== "done"; });
  }
  // an entry stays in localStorage until its upload succeeds on a page: one whose tab was closed
  // after its last byte (while the server ingested it) is finished all the same. The server is
  // asked (tus HEAD: every byte in) before the page names it, and a finished one's entry goes
  // (found by QA: "Interrupted" beside the same upload listed Done). One the server cannot be
  // asked about (no answer, not this endpoint's) is named, as before.
  var checked = false;
  function finishedOnServer(entry) {
    if (!tusUpload(entry.url)) { return Promise.resolve(false); }
    return fetch(entry.url, { method: "HEAD", credentials: "same-origin", headers: { "Tus-Resumable": "1.0.0" } })
      .then(function (r) {
        var offset = r.headers.get("Upload-Offset"), length = r.headers.get("Upload-Length");
        return r.status === 200 && offset !== null && length !== null && offset === length;
      })
      .catch(function () { return false; });
  }
  function dropFinished(entries) {
    return Promise.all(entries.map(function (e) {
      return finishedOnServer(e).then(function (done) {
        if (!done) { return true; }
        var store = storage();
        if (store) { try { store.removeItem(e.key); } catch (err) { /* named no more all the same */ } }
        return false;
      });
    })).then(function (keep) { return entries.filter(function (e, i) { return keep[i]; }); });
  }
  function showInterrupted() {
    if (!interruptedBox || !checked) { return; }
    var store = storage();
    interrupted = interrupted.filter(function (e) { return store && store.getItem(e.key) !== null; });
    var names = [];
    interrupted.forEach(function (e) { if (names.indexOf(e.name) < 0) { names.push(e.name); } });
    interruptedBox.hidden = names.length === 0;
    if (!names.length) { return; }
    var shown = names.slice(0, 5).join(", ") + (names.length > 5 ? ", …" : "");
    text(interruptedBox.querySelector("[data-testid=interrupted-text]"),
         fill(names.length === 1 ? strings.interruptedOne : strings.interruptedMany, "{names}", shown));
  }
  if (interruptedBox) {
    dropFinished(readInterrupted()).then(function (left) {
      interrupted = left;
      checked = true;
      showInterrupted();
    });
    interruptedBox.querySelector("button").addEventListener("click", function () {
      var store = storage();
      interrupted.forEach(function (e) {
        if (inUse(e)) { return; }  // being resumed on this page now
        if (store) { store.removeItem(e.key); }
        // the server keeps what arrived until it expires; terminated now (only the uploader may)
        if (tusUpload(e.url)) {
          fetch(e.url, { method: "DELETE", credentials: "same-origin",
                         headers: { "Tus-Resumable": "1.0.0", "X-CSRFToken": csrf } }).catch(function () {});
        }
      });
      showInterrupted();
    });
  }

  window.addEventListener("offline", function () {
    items.forEach(function (it) {
      // a request under way may stall rather than fail: stopped now, it resumes from what the
      // server kept when the connection is back
      if (it.state === "uploading") { it.upload.abort(); waitOnline(it); }
    });
  });
  window.addEventListener("online", function () {
    items.forEach(function (it) { if (it.state === "offline") { send(it); } });
  });
  pauseBtn.addEventListener("click", function () {
    items.forEach(function (it) {
      if (it.state === "uploading" || it.state === "offline") {
        it.upload.abort(); it.state = "paused"; text(it.status, " " + strings.paused);
      }
    });
    updateOverall();
  });
  resumeBtn.addEventListener("click", function () {
    items.forEach(function (it) {
      if (it.state === "paused") { send(it); } else if (it.state === "failed") { it.state = "waiting"; text(it.status, " " + strings.waiting); start(it); }
    });
    updateOverall();
  });
}());
