/* Upload page: drag and drop files, folders or zips; each file is a resumable tus upload
   (tus-js-client, served by the app). Resumes after a dropped connection (retries) or a page
   reload (fingerprints in localStorage: choose the same file again). After the last byte the
   server ingests the file; this page polls the upload's status for the per-file report. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.tus) { return; }
  var endpoint = form.getAttribute("data-endpoint");
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
  var CHUNK = 16 * 1024 * 1024;

  function text(el, value) { el.textContent = value; }

  // why an upload stopped, from the server's answer where there is one: a file over the
  // organization's limit, a closed case or a refusal will not go through by trying again, a
  // sign-out needs a sign-in first; anything else (a connection gone after the retries) resumes
  // later. The tus server's texts are in the reader's language, so the page goes by codes: the
  // Lightbox-Refusal header (apps/imaging/tus.py Refusal), the JSON of the access gate and of the
  // CSRF check
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
    return strings.failed;
  }

  function updateOverall() {
    var total = 0, sent = 0;
    items.forEach(function (it) { total += it.file.size; sent += it.sent; });
    overall.hidden = items.length === 0;
    var p = total ? Math.floor(100 * sent / total) : 100;
    bar.value = p;
    text(percent, p + "%");
    var active = items.some(function (it) { return it.state === "uploading"; });
    var paused = items.some(function (it) { return it.state === "paused"; });
    pauseBtn.disabled = !active;
    resumeBtn.disabled = !paused;
  }

  // a finished upload joins "Your recent uploads" at once, as the page would list it reloaded
  function addRecent(it, job) {
    if (!recent || it.listed) { return; }
    it.listed = true;
    var empty = recent.querySelector("[data-empty]");
    if (empty) { recent.removeChild(empty); }
    var li = document.createElement("li");
    li.appendChild(document.createTextNode(strings.justNow + " · " + it.name + " · " + job.state_label));
    (job.studies || []).forEach(function (s) {
      li.appendChild(document.createTextNode(" · "));
      var a = document.createElement("a");
      a.href = s.url;
      a.textContent = (s.description || strings.untitled) + " (" + s.state_label + ")";
      li.appendChild(a);
    });
    if (job.failure) { li.appendChild(failureNote(job.failure, "help")); }
    recent.insertBefore(li, recent.firstChild);
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
      var a = document.createElement("a");
      a.href = s.url;
      a.textContent = strings.study + " (" + s.state_label + ", " + s.instances + ")";
      li.appendChild(a);
      it.report.appendChild(li);
    });
    (job.files || []).forEach(function (f) {
      if (!f.reason) { return; }
      var li = document.createElement("li");
      li.textContent = f.path + ": " + f.outcome_label + " — " + (f.reason_label || f.reason);
      it.report.appendChild(li);
    });
    var done = job.state !== "queued" && job.state !== "running";
    if (done) { addRecent(it, job); }
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
    it.upload.findPreviousUploads().then(function (previous) {
      if (previous.length) { it.upload.resumeFromPreviousUpload(previous[0]); }
      it.state = "uploading";
      text(it.status, " " + strings.uploading);
      it.upload.start();
      updateOverall();
    });
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
    var status = document.createElement("span");
    text(status, " " + strings.waiting);
    var progress = document.createElement("progress");
    progress.max = 100; progress.value = 0;
    progress.setAttribute("aria-label", path || file.name);
    var report = document.createElement("ul");
    report.className = "report";
    li.appendChild(name); li.appendChild(document.createTextNode(" · ")); li.appendChild(status);
    li.appendChild(progress); li.appendChild(report);
    list.appendChild(li);
    var it = { file: file, name: path || file.name, sent: 0, state: "waiting", status: status, progress: progress,
               report: report };
    var caseId = document.getElementById("upload-case").value;
    it.upload = new window.tus.Upload(file, {
      endpoint: endpoint,
      chunkSize: CHUNK,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
      headers: { "X-CSRFToken": csrf },
      metadata: { filename: path || file.name, filetype: file.type || "application/octet-stream", "case": caseId },
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: function (sent, total) {
        it.sent = sent;
        it.progress.value = total ? Math.floor(100 * sent / total) : 100;
        updateOverall();
      },
      onError: function (error) {
        it.state = "failed"; text(it.status, " " + failure(error)); updateOverall(); finished();
      },
      onSuccess: function () {
        it.state = "done"; it.sent = file.size; it.progress.value = 100;
        text(it.status, " " + strings.processing);
        updateOverall();
        poll(it);
        finished();
      }
    });
    items.push(it);
    start(it);
  }

  function readEntry(entry, prefix) {
    if (entry.isFile) {
      entry.file(function (f) { add(f, prefix + f.name); });
    } else if (entry.isDirectory) {
      var reader = entry.createReader();
      var readAll = function () {
        reader.readEntries(function (entries) {
          if (!entries.length) { return; }
          entries.forEach(function (e) { readEntry(e, prefix + entry.name + "/"); });
          readAll();
        });
      };
      readAll();
    }
  }

  document.getElementById("upload-files").addEventListener("change", function (e) {
    Array.prototype.forEach.call(e.target.files, function (f) { add(f, f.name); });
    e.target.value = "";
  });
  document.getElementById("upload-folder").addEventListener("change", function (e) {
    Array.prototype.forEach.call(e.target.files, function (f) { add(f, f.webkitRelativePath || f.name); });
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
      Array.prototype.forEach.call(dt.items, function (item) {
        var entry = item.webkitGetAsEntry();
        if (entry) { readEntry(entry, ""); }
      });
    } else {
      Array.prototype.forEach.call(dt.files, function (f) { add(f, f.name); });
    }
  });
  pauseBtn.addEventListener("click", function () {
    items.forEach(function (it) {
      if (it.state === "uploading") {
        it.upload.abort(); it.state = "paused"; text(it.status, " " + strings.paused);
      }
    });
    updateOverall();
  });
  resumeBtn.addEventListener("click", function () {
    items.forEach(function (it) {
      if (it.state === "paused") { it.state = "uploading"; text(it.status, " " + strings.uploading); it.upload.start(); }
    });
    updateOverall();
  });
}());
