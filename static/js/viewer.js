/* Lightbox study viewer: stack scrolling, window/level, zoom/pan, invert, cine, progressive frames.
 *
 * Frames come from the server already windowed (16-bit to 8-bit happens there), so every frame
 * request passes the access policy: a revoked or expired grant stops the viewer at its next frame.
 * Frames are Cache-Control: no-store (a shared workstation's disk cache kept the patient's images
 * after access ended): the viewer keeps those it fetched in memory (keptFrames: at most
 * KEEP_BYTES, data-keep-bytes, the least recently shown let go first), so scrolling back costs
 * no request, and drops them all when it stops and when the page is left (a page the browser
 * brings back from its back/forward cache is loaded again). It also asks on a timer
 * (data-access-check-ms) whether its reader may still view the images, so that a revoked share or
 * an ended tumor board stops a reader who stays on one image or scrolls through frames it holds:
 * the image, the thumbnails and the frames kept are cleared and the message says access has ended
 * (with the meeting, for a tumor board's), and the back link leads where the reader may still go.
 * The label under the image follows the pixels on screen (a low-quality first frame says so).
 * The page lists the series and the first series' instances; another series' instances are asked
 * for (a page at a time) when it is picked, and kept for when it is picked again.
 * A server process renders a few frames at a time: a frame it has no room for answers 503 "busy"
 * with Retry-After, asked again after it (BUSY_RETRIES times, then its message is shown in the
 * image's place); the series thumbnails are asked for THUMBS_AT_ONCE at a time, not all at once.
 * No framework, no inline code (CSP); translated strings arrive as data- attributes. */
(function () {
  "use strict";

  var root = document.getElementById("viewer");
  if (!root) { return; }
  var data = JSON.parse(document.getElementById("viewer-data").textContent);
  var ds = root.dataset;
  var stage = document.getElementById("viewer-stage");
  var canvas = document.getElementById("viewer-canvas");
  var canvasWrap = document.getElementById("viewer-canvas-wrap");
  var ctx = canvas.getContext("2d");
  var labelEl = document.getElementById("viewer-label");
  var messageEl = document.getElementById("viewer-message");
  var loadingEl = document.getElementById("viewer-loading");
  var slider = document.getElementById("viewer-slice");
  var positionEl = document.getElementById("viewer-position");
  var cineButton = document.getElementById("viewer-cine");
  var fpsSelect = document.getElementById("viewer-fps");
  var invertButton = document.getElementById("viewer-invert");
  var modeEl = document.getElementById("meta-mode");
  // what this reader may see of an image: the page's, then, for a reader of originals, that of
  // the image last shown in full (a lossy original is never said to be of diagnostic quality)
  var modeText = modeEl.textContent;
  var csrf = root.querySelector("input[name=csrfmiddlewaretoken]");
  var ZERO = "00000000-0000-0000-0000-000000000000";
  var LOW_DELAY_MS = 120;
  var PREFETCH = 3;
  // the most the frames kept in memory may take (a 512x512 CT's diagnostic PNG: about 112 KiB):
  // the page's data-keep-bytes (LIGHTBOX_VIEWER_FRAMES_MEMORY_MB), else 100 MiB
  var KEEP_BYTES = Number(ds.keepBytes) > 0 ? Number(ds.keepBytes) : 100 * 1024 * 1024;
  // a frame answered "busy" (503: every render slot of the server process taken) is asked again
  // after its Retry-After (1 to 10 s) at most this many times, then its message is shown
  var BUSY_RETRIES = 4;
  var THUMBS_AT_ONCE = 2;  // series thumbnails asked for at a time (each takes a render slot)

  var state = {
    series: 0, stack: [], total: 0, pos: 0, center: null, width: null, fileWindow: null,
    zoom: 1, panX: 0, panY: 0, invert: false, tool: "scroll", mode: data.mode,
    image: null, kind: "none", token: 0, stopped: false, cine: null, dragWindow: false,
    frames: 0,  // images shown, for the close beacon: one each time another image comes on screen
    shown: null,  // the series and stack position of the pixels on screen (the next ones may still be loading)
    noImage: false,  // the image at pos has none to show (no image in the object, or not decodable)
    waiting: false,  // the image at pos is not listed yet: it is shown when its series' page arrives
    notice: "",  // said under the image while images are shown (the original withdrawn: previews from then on)
  };
  // per series (by index): its stack as far as listed (an image per frame), where the next page
  // of its instances starts (null once all are listed), and whether a page is being asked for
  var records = [];

  function frameUrl(item, quality, extra) {
    var url = ds.frameUrl.replace(ZERO, item.id) + "?frame=" + item.frame + "&quality=" + quality;
    if (state.center !== null && state.width !== null) {
      url += "&center=" + Math.round(state.center) + "&width=" + Math.max(1, Math.round(state.width));
    }
    return url + (extra || "");
  }

  function setLabel(kind) {
    var text = {
      diagnostic: ds.labelDiagnostic, preview: ds.labelPreview, loading: ds.labelLoading,
      lossy: ds.labelLossy, none: ds.labelNone,
    }[kind] || ds.labelPreview;
    state.kind = kind;
    labelEl.dataset.kind = kind;
    if (labelEl.textContent !== text) { labelEl.textContent = text; }
    nameCanvas();
  }

  function seriesName(index) {
    var series = data.series[index];
    if (!series) { return ""; }
    return (series.number !== null ? series.number + " · " : "") + (series.description || series.modality || "");
  }

  // The image's name for assistive technology, like the label under it, follows the pixels on
  // screen: its quality label, series and position. While the next image loads, the name is still
  // that of the one shown, so a preview is never named as the original or the other way round.
  function nameCanvas() {
    var shown = state.shown;
    if (state.kind === "none" || !shown) { canvas.setAttribute("aria-label", ds.labelNone); return; }
    canvas.setAttribute("aria-label", ds.textCanvas.replace("{quality}", labelEl.textContent)
      .replace("{series}", seriesName(shown.series)).replace("{n}", String(shown.pos + 1))
      .replace("{total}", String(shown.total)));
  }

  // the Mode of a reader of originals follows the lossy decision of the frame on screen, the one
  // its label shows ("lossy": the original is lossy-compressed); a preview reader's stays
  function followMode(label) {
    if (state.mode !== "diagnostic") { return; }
    var kind = label === "lossy" ? "lossy" : label === "diagnostic" ? "diagnostic" : null;
    if (!kind) { return; }
    modeText = modeEl.dataset[kind];
    modeEl.dataset.kind = kind;
  }

  function showMessage(text) {
    messageEl.textContent = text;
    messageEl.hidden = !text;
  }

  // An object with no image (an RT plan, a report, an ECG) or one that cannot be decoded: the
  // page says so, claims no quality (the Mode says there is no image, not "Diagnostic quality
  // available"), and the tools that act on an image (window presets, zoom, fit, invert, the window,
  // pan and zoom drags) are disabled until an image is shown again
  function setImageShown(shown) {
    state.noImage = !shown;
    root.dataset.image = shown ? "shown" : "none";
    modeEl.textContent = shown ? modeText : modeEl.dataset.none;
    root.querySelectorAll("#viewer-presets button, #viewer-zoom-in, #viewer-zoom-out, #viewer-fit, #viewer-invert, " +
                          "input[name=viewer-tool]:not([value=scroll])")
      .forEach(function (control) { control.disabled = !shown || state.stopped; });
    if (!shown && state.tool !== "scroll") {
      state.tool = "scroll";
      root.querySelector("input[name=viewer-tool][value=scroll]").checked = true;
    }
  }

  function noImage(text) {
    state.image = null;
    state.shown = null;
    draw();
    setLabel("none");
    showMessage(text);
    setImageShown(false);
    document.getElementById("meta-window").textContent = "—";
  }

  // what the reader is told once refused: that the tumor board meeting which gave the access has
  // ended (the refusal says "ended": "board", of the reader's own share), else that a share ended
  function deniedMessage(refusal) {
    // a study whose images are again arriving (409 "not_ready"): the server's words, the way back kept
    if (refusal && refusal.error === "not_ready") { return refusal.message || ds.msgNotReady; }
    return refusal && refusal.ended === "board" ? ds.msgBoardEnded : ds.msgDenied;
  }

  // a way back is always left: refused the images but not the case ("denied", 403), the page the
  // "back" link leads to still opens and it stays; refused the case ("gone", 404, or sent to sign
  // in), that page would be a 404, and the link leads where the reader may still go instead (Shared
  // with me, or the site's start for a link holder, who has no such page: data-ended-href)
  var backLink = root.querySelector("[data-testid=viewer-back]");
  function leaveBackToReachable(refusal) {
    if (!backLink) { return; }
    if (!(refusal && (refusal.error === "denied" || refusal.error === "not_ready")) && backLink.dataset.endedHref) {
      backLink.href = backLink.dataset.endedHref;
      backLink.textContent = backLink.dataset.endedLabel;
    }
    backLink = null;
  }

  function stop(text, refusal) {
    state.stopped = true;
    leaveBackToReachable(refusal);
    state.token += 1;  // a frame still on its way is dropped
    window.clearInterval(accessTimer);
    setLoading("stopped");
    stopCine();
    // nothing of the images is kept to be shown again: the frames kept in memory are let go, the
    // bitmap on screen is released, the series thumbnails give way to placeholders
    dropFrames();
    if (state.image && state.image.close) { state.image.close(); }
    state.image = null;
    state.shown = null;
    ["shownSeries", "shownPos", "shownWindow", "shownQuality"].forEach(function (key) { delete root.dataset[key]; });
    root.querySelectorAll("#viewer-series-list img").forEach(function (img) {
      img.removeAttribute("src");
      img.replaceWith(thumbPlaceholder(""));
    });
    document.getElementById("meta-window").textContent = "—";
    state.dragWindow = false;
    draw();
    setLabel("none");
    showMessage(text);
    root.classList.add("viewer-stopped");
    // access has ended: the controls say so (disabled, so neither a pointer nor the keyboard
    // operates them), not only by looking faded; the stage's own handlers check state.stopped
    root.querySelectorAll("#viewer-series-list button, .viewer-toolbar button, .viewer-toolbar input, " +
                          ".viewer-toolbar select, .viewer-slider input")
      .forEach(function (control) { control.disabled = true; });
  }

  // ---------------------------------------------------------------- drawing

  // The stage is as high as the screen leaves it below what stands above it (the site's header,
  // the viewer's title and way back, the series on a narrow screen, the tools) with the slider
  // under it: at most its CSS height, at least its CSS min-height. So the page opens at its top,
  // the title, the way back and the rendition label in sight, and on a tablet either way up, a
  // phone or a desktop the whole image and its slider in sight too, without scrolling the page
  // (scrolling it to the viewer hid the site's header and the way back above the screen's edge).
  // Asked again when the width changes (a tablet turned) and when a series is picked (a CT's
  // window presets make the tools taller); not when only the height does, as it does while a
  // phone's or a tablet's browser bar shows and hides with the page's scroll: the image keeps its size.
  var fittedWidth = null;
  function fitStage() {
    fittedWidth = window.innerWidth;
    stage.style.height = "";
    var box = stage.getBoundingClientRect();
    var under = root.querySelector(".viewer-slider").getBoundingClientRect();
    var room = window.innerHeight - (box.top + window.scrollY) - (under.bottom - box.bottom) - 8;
    if (room < box.height) {
      stage.style.height = Math.max(Math.floor(room), parseFloat(window.getComputedStyle(stage).minHeight) || 0) + "px";
    }
  }

  function resize() {
    if (window.innerWidth !== fittedWidth) { fitStage(); }
    var ratio = window.devicePixelRatio || 1;
    var w = Math.max(1, Math.round(canvasWrap.clientWidth * ratio));
    var h = Math.max(1, Math.round(canvasWrap.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    draw();
  }

  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    var img = state.image;
    if (!img) { return; }
    var item = state.stack[state.pos] || {};
    var iw = item.columns || img.width, ih = item.rows || img.height;
    var fit = Math.min(canvas.width / iw, canvas.height / ih);
    var scale = fit * state.zoom;
    var ratio = window.devicePixelRatio || 1;
    var dw = iw * scale, dh = ih * scale;
    var x = (canvas.width - dw) / 2 + state.panX * ratio, y = (canvas.height - dh) / 2 + state.panY * ratio;
    ctx.imageSmoothingEnabled = scale < 4;
    ctx.filter = state.invert ? "invert(1)" : "none";
    ctx.drawImage(img, x, y, dw, dh);
    ctx.filter = "none";
    document.getElementById("meta-zoom").textContent = Math.round(scale * 100 * (iw / (item.columns || iw))) + " %";
  }

  // ---------------------------------------------------------------- loading

  // Frames kept in memory, by URL (the frame, its quality and window): its bytes as they came
  // (an ArrayBuffer in the page's own memory: not a Blob, which a browser may page out to disk,
  // nor the HTTP cache, which the server's no-store keeps frames out of), its labels and windows.
  // A Map keeps the order of insertion: a frame used again is put back last, so the first is
  // the least recently used, let go first once KEEP_BYTES would be passed.
  var keptFrames = new Map();
  var keptBytes = 0;
  var keptEra = 0;  // dropFrames moves it on: a frame still on its way then is not kept
  var asking = new Map();  // URL -> a frame on its way, so a frame wanted twice is asked for once

  // how many frames are kept and the bytes they take (data-frames-kept, data-frames-kept-bytes)
  function reportKept() {
    root.dataset.framesKept = String(keptFrames.size);
    root.dataset.framesKeptBytes = String(keptBytes);
  }

  function keepFrame(url, entry) {
    var size = entry.bytes.byteLength;
    if (size > KEEP_BYTES || keptFrames.has(url)) { return; }
    keptFrames.forEach(function (old, key) {  // oldest first, until the new one fits
      if (keptBytes + size > KEEP_BYTES) { keptFrames.delete(key); keptBytes -= old.bytes.byteLength; }
    });
    keptFrames.set(url, entry);
    keptBytes += size;
    reportKept();
  }

  function keptFrame(url) {
    var entry = keptFrames.get(url);
    if (entry) { keptFrames.delete(url); keptFrames.set(url, entry); }  // the most recently used now
    return entry;
  }

  // access ended, or the page is left: nothing of the images stays in the page's memory
  function dropFrames() {
    keptEra += 1;
    keptFrames.clear();
    keptBytes = 0;
    asking.clear();
    reportKept();
  }

  // ask the server for a frame (once while it is on its way); an image is kept in memory unless
  // "keep" is false (the small frames of a window drag, each of another window)
  function askFrame(url, keep) {
    var on = asking.get(url);
    if (on) { return on; }
    var era = keptEra;
    // cache "no-store": the HTTP cache is neither read nor written (the server says so too)
    var ask = function (tries) {
      return fetch(url, { credentials: "same-origin", cache: "no-store",
                          headers: { "Accept": "image/*,application/json", "X-Lightbox-Viewer-Session": data.session } })
        .then(function (response) { return answered(response, tries); });
    };
    // the server had no room to render it now ("busy"): asked again after its Retry-After, a few
    // times (not once the viewer has stopped), then { busy: true } with the server's words
    var busy = function (response, tries) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (body.error !== "busy") { return { error: true }; }  // storage unavailable: the network message
        if (tries >= BUSY_RETRIES || state.stopped) { return { busy: true, message: body.message || ds.msgNetwork }; }
        var seconds = Number(response.headers.get("Retry-After"));
        var wait = Math.min(10, Math.max(1, isFinite(seconds) ? seconds : 1)) * 1000;
        return new Promise(function (resolve) { window.setTimeout(resolve, wait); }).then(function () {
          return state.stopped ? { busy: true, message: body.message || ds.msgNetwork } : ask(tries + 1);
        });
      });
    };
    var answered = function (response, tries) {
      if (response.status === 503) { return busy(response, tries); }
      if (response.status === 403 || response.status === 404 || response.status === 409) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          // the diagnostic original withdrawn meanwhile: previews from now on, not a stop
          if (body.error === "preview_only") { return { previewOnly: true }; }
          return { denied: true, message: body.message || ds.msgDenied, ended: body.ended, error: body.error };
        });
      }
      if (!response.ok) { return { error: true }; }
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === 0) {
        return response.json().then(function (body) { return { undecodable: true, body: body }; });
      }
      var entry = { type: type, label: response.headers.get("X-Lightbox-Frame") || "preview",
                    windowText: response.headers.get("X-Lightbox-Window") || "",
                    fileWindow: response.headers.get("X-Lightbox-Default-Window") || "" };
      return response.arrayBuffer().then(function (bytes) {
        entry.bytes = bytes;
        if (keep !== false && era === keptEra && !state.stopped) { keepFrame(url, entry); }
        return entry;
      });
    };
    on = ask(0);
    asking.set(url, on);
    var done = function () { if (asking.get(url) === on) { asking.delete(url); } };
    on.then(done, done);
    return on;
  }

  // a frame to show: from memory when kept, else asked of the server; decoded for the canvas
  function fetchFrame(url, keep) {
    var entry = keptFrame(url);
    return (entry ? Promise.resolve(entry) : askFrame(url, keep)).then(function (result) {
      if (!result.bytes) { return result; }
      return createImageBitmap(new Blob([result.bytes], { type: result.type })).then(function (bitmap) {
        return { bitmap: bitmap, label: result.label, windowText: result.windowText, fileWindow: result.fileWindow };
      });
    });
  }

  function apply(result, token, finalPass) {
    if (token !== state.token || state.stopped) {
      if (result.bitmap && result.bitmap.close) { result.bitmap.close(); }  // arrived too late
      return false;
    }
    if (result.denied) { stop(deniedMessage(result), result); return false; }
    if (result.previewOnly) { toPreview(); return false; }
    if (result.error) { showMessage(ds.msgNetwork); return false; }
    // still "busy" after its retries: the server's words in the image's place (moving to another
    // image and back asks again); a small first pass that was busy leaves the full frame to come
    if (result.busy) { if (finalPass) { noImage(result.message); } return false; }
    if (result.undecodable) {
      // a stored file found altered ("integrity"): the server's words (recorded for the security officer)
      var body = result.body || {};
      // or an image withheld from this link ("withheld": its pixels may show patient details)
      noImage((body.error === "integrity" || body.error === "withheld") && body.message ? body.message
        : ds.msgUndecodable + (body.reason ? " " + body.reason : ""));
      return true;
    }
    // counted when another image comes on screen: not for its low-quality first pass and its full
    // frame both, a new window of the image on screen, a frame that never arrived (scrolled past)
    // or one with nothing to show (no image, not decodable)
    var previous = state.shown;
    if (!previous || previous.series !== state.series || previous.pos !== state.pos) { state.frames += 1; }
    showMessage(state.notice);
    if (finalPass) { followMode(result.label); }
    setImageShown(true);
    if (state.image && state.image !== result.bitmap && state.image.close) { state.image.close(); }
    state.image = result.bitmap;
    state.shown = { series: state.series, pos: state.pos, total: state.total };
    draw();
    setLabel(finalPass ? result.label : "loading");
    if (result.windowText) { document.getElementById("meta-window").textContent = result.windowText; }
    if (result.fileWindow) { state.fileWindow = result.fileWindow; }
    root.dataset.shownSeries = data.series[state.series].id;
    root.dataset.shownPos = String(state.pos);
    root.dataset.shownWindow = result.windowText;
    root.dataset.shownQuality = finalPass ? result.label : "low";
    return true;
  }

  // The diagnostic original is no longer the reader's (the access check's "diagnostic": false, or
  // a diagnostic frame answered "preview_only"): the diagnostic frames held in memory and the one
  // on screen are let go, and the viewer goes on with previews, labelled so (the label under the
  // image follows the frames; the Mode says previews only), and says why
  function toPreview() {
    if (state.mode !== "diagnostic" || state.stopped) { return; }
    state.mode = "preview";
    root.dataset.mode = "preview";
    keptEra += 1;  // a diagnostic frame still on its way is not kept
    keptFrames.forEach(function (entry, url) {
      if (url.indexOf("quality=diagnostic") !== -1) { keptFrames.delete(url); keptBytes -= entry.bytes.byteLength; }
    });
    asking.forEach(function (on, url) { if (url.indexOf("quality=diagnostic") !== -1) { asking.delete(url); } });
    reportKept();
    modeText = modeEl.dataset.preview;
    modeEl.dataset.kind = "preview";
    if (!state.noImage) { modeEl.textContent = modeText; }
    if (state.image && state.image.close) { state.image.close(); }
    state.image = null;
    state.shown = null;
    draw();
    setLabel("loading");
    state.notice = ds.msgPreviewOnly;
    showMessage(state.notice);
    load();
  }

  function load(options) {
    if (state.stopped || !state.total) { return; }
    var item = state.stack[state.pos];
    if (!item) {  // not listed yet: shown when its page arrives (a frame still on its way is dropped)
      state.token += 1;
      state.waiting = true;
      setLoading("loading");
      fetchPage(state.series);
      return;
    }
    state.waiting = false;
    if (root.dataset.seriesState !== "ready") { setLoading("ready"); }
    var token = ++state.token;
    if (item.image === false) {  // nothing to ask for: the object holds no image
      noImage(ds.msgNoImage);
      return;
    }
    var lowOnly = options && options.lowOnly;
    var done = false;
    var fullUrl = frameUrl(item, state.mode);
    var held = !lowOnly && keptFrames.has(fullUrl);  // in memory: no small frame first
    var full = lowOnly ? null : fetchFrame(fullUrl);
    var showLow = function () {
      if (done || token !== state.token) { return; }
      // the small frames of a window drag, each of another window, are not kept in memory
      fetchFrame(frameUrl(item, "low"), !lowOnly).then(function (result) {
        if (!done) { apply(result, token, false); } else if (result.bitmap) { result.bitmap.close(); }
      }).catch(function () {});
    };
    if (lowOnly) { showLow(); return; }
    var timer = held ? null : window.setTimeout(showLow, LOW_DELAY_MS);
    full.then(function (result) {
      done = true;
      window.clearTimeout(timer);
      if (apply(result, token, true) && !result.undecodable) { prefetch(token); }
    }).catch(function () {
      done = true;
      window.clearTimeout(timer);
      if (token === state.token) { showMessage(ds.msgNetwork); }
    });
  }

  function prefetch(token) {
    // the neighbours are kept in memory, to be shown without a request when scrolled to
    var order = [];
    for (var d = 1; d <= PREFETCH; d++) { order.push(state.pos + d, state.pos - d); }
    // (an object with no image has no frame to ask for: the server would only say so)
    var queue = order.filter(function (p) {
      return p >= 0 && p < state.stack.length && state.stack[p].image !== false;
    });
    var next = function () {
      if (token !== state.token || !queue.length || state.stopped) { return; }
      var url = frameUrl(state.stack[queue.shift()], state.mode);
      if (keptFrame(url)) { next(); return; }  // kept already
      askFrame(url).then(function (result) {
        // refused (access ended, or the study's images are arriving again): the viewer stops
        // at once, its kept frames let go, rather than show them until the next check
        if (result.denied) { if (!state.stopped) { stop(deniedMessage(result), result); } return; }
        if (result.previewOnly) { toPreview(); return; }
        if (!result.error && !result.busy) { next(); }
      }).catch(function () {});
    };
    next();
  }

  // ---------------------------------------------------------------- series

  function recordOf(index) {
    if (!records[index]) { records[index] = { stack: [], next: 0, fetching: false }; }
    return records[index];
  }

  function addInstances(record, instances) {
    instances.forEach(function (inst) {
      for (var f = 0; f < inst.frames; f++) {
        record.stack.push({ id: inst.id, frame: f, frameCount: inst.frames, number: inst.number,
                            rows: inst.rows, columns: inst.columns, image: inst.image });
      }
    });
  }

  // the series' number of images, known from the page before all its instances are listed
  function seriesTotal(index) {
    var record = recordOf(index);
    if (record.next === null) { return record.stack.length; }
    return Math.max(data.series[index].frames || 0, record.stack.length);
  }

  function setLoading(kind) {  // loading, ready, failed or stopped
    root.dataset.seriesState = kind;
    loadingEl.hidden = kind !== "loading";
    stage.setAttribute("aria-busy", kind === "loading" ? "true" : "false");
  }

  // Ask for the next page of a series' instances, one request at a time. An answer for a series
  // no longer shown is kept for when it is picked again, never shown; a failure shows the network
  // message, and picking the series again (or moving to an image not yet listed) asks again.
  function fetchPage(index) {
    var record = recordOf(index);
    if (record.fetching || record.next === null || state.stopped) { return; }
    record.fetching = true;
    var url = ds.seriesUrl.replace(ZERO, data.series[index].id) + "?start=" + record.next;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 403 || response.status === 404 || response.status === 409) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            return { denied: true, ended: body.ended, error: body.error, message: body.message };
          });
        }
        if (!response.ok) { return { error: true }; }
        return response.json();
      })
      .catch(function () { return { error: true }; })
      .then(function (body) {
        record.fetching = false;
        var current = index === state.series && !state.stopped;
        if (body.denied) {
          if (current) { stop(deniedMessage(body), body); }
          return;
        }
        if (body.error || !Array.isArray(body.instances)) {
          record.failed = true;  // cine does not ask again on its own (the reader does, by moving or picking)
          if (current && (state.waiting || state.cine)) { setLoading("failed"); showMessage(ds.msgNetwork); }
          return;
        }
        record.failed = false;
        addInstances(record, body.instances);
        record.next = typeof body.next === "number" && body.instances.length ? body.next : null;
        if (!current) { return; }
        listed();
        fetchPage(index);  // a long series: its next page, until all are listed
      });
  }

  // more of the shown series is listed: its total, and the image waited for
  function listed() {
    state.total = seriesTotal(state.series);
    if (state.pos >= state.total) { state.pos = Math.max(0, state.total - 1); }
    updateCineControls();
    updatePosition();
    if (state.waiting && state.stack[state.pos]) { load(); }
  }

  // ---------------------------------------------------------------- navigation

  function updatePosition() {
    var total = state.total;
    slider.max = String(Math.max(1, total));
    slider.value = String(state.pos + 1);
    positionEl.textContent = (total ? state.pos + 1 : 0) + " / " + total;
    nameCanvas();
    var item = state.stack[state.pos];
    document.getElementById("meta-image").textContent = item
      ? (item.number !== null ? "#" + item.number : "—") + (item.frameCount > 1 ? " · " + (item.frame + 1) + "/" + item.frameCount : "")
      : "—";
    document.getElementById("meta-size").textContent = item && item.columns ? item.columns + " × " + item.rows : "—";
  }

  function go(pos) {
    if (state.stopped || !state.total) { return; }
    var p = Math.max(0, Math.min(state.total - 1, pos));
    // the image at pos is shown, or its lack of one said: nothing to ask for again (a drag over
    // an image that cannot be decoded asked for it at every move, in full and then small)
    if (p === state.pos && (state.image || state.noImage)) { return; }
    state.pos = p;
    updatePosition();
    load();
  }

  // a series of one image has nothing to play: Play and its speed are disabled (a tap did nothing)
  function updateCineControls() {
    var single = state.total < 2;
    if (single) { stopCine(); }
    cineButton.disabled = single;
    fpsSelect.disabled = single;
  }

  function selectSeries(index) {
    var series = data.series[index];
    if (!series || state.stopped) { return; }
    var record = recordOf(index);
    state.series = index;
    state.stack = record.stack;  // the same list: pages arriving later extend it
    state.total = seriesTotal(index);
    state.pos = 0;
    state.waiting = false;
    state.center = state.width = null;
    state.zoom = 1; state.panX = state.panY = 0;
    updateCineControls();
    showMessage("");
    if (!record.stack.length) {  // nothing of it listed yet: no image of the series left before on screen
      state.token += 1;
      state.image = null;
      state.shown = null;
      draw();
      setLabel("none");
    }
    document.getElementById("meta-series").textContent =
      (series.number !== null ? series.number + " · " : "") + (series.description || "—");
    document.getElementById("meta-modality").textContent = series.modality || "—";
    root.querySelectorAll("[data-ct-only]").forEach(function (b) { b.hidden = series.modality !== "CT"; });
    fitStage();
    resize();
    root.querySelectorAll("#viewer-series-list button").forEach(function (b, i) {
      b.setAttribute("aria-current", i === index ? "true" : "false");
    });
    state.image = null;
    updatePosition();
    load();
    fetchPage(index);  // the rest of a long series (nothing once all is listed)
  }

  // a series thumbnail with no image: "No image" and what the series holds (its kind), in the
  // thumbnail's place
  function thumbPlaceholder(kind) {
    var box = document.createElement("span");
    box.className = "viewer-thumb-none";
    box.setAttribute("data-testid", "viewer-thumb-none");
    var none = document.createElement("span");
    none.textContent = ds.labelNone;
    box.appendChild(none);
    if (kind) {
      var what = document.createElement("small");
      what.textContent = kind;
      box.appendChild(what);
    }
    return box;
  }

  // The series thumbnails, THUMBS_AT_ONCE at a time (each is a frame the server renders: asked for
  // all at once, a study's series took every render slot of its process), not kept in memory. A
  // frame that cannot be decoded (JSON, not an image), or refused, gives the placeholder; one still
  // "busy" after its retries says so in the thumbnail's place
  var thumbQueue = [];
  var thumbsAsking = 0;
  function askThumbnails() {
    while (thumbsAsking < THUMBS_AT_ONCE && thumbQueue.length && !state.stopped) {
      thumbsAsking += 1;
      askThumbnail(thumbQueue.shift()).then(function () { thumbsAsking -= 1; askThumbnails(); });
    }
  }

  function askThumbnail(job) {
    var img = job.img;
    var placeholder = function (text) { if (img.parentNode) { img.replaceWith(thumbPlaceholder(text)); } };
    return askFrame(job.url, false).then(function (result) {
      if (state.stopped || !img.parentNode) { return; }  // stopped meanwhile: its placeholder is there
      if (!result.bytes) {
        var withheld = result.body && result.body.error === "withheld" && result.body.short;
        placeholder(withheld ? result.body.short : result.busy ? ds.thumbBusy : ds.thumbUndecodable);
        return;
      }
      var address = URL.createObjectURL(new Blob([result.bytes], { type: result.type }));
      var revoke = function () { URL.revokeObjectURL(address); };
      img.addEventListener("load", revoke, { once: true });
      img.addEventListener("error", revoke, { once: true });
      img.src = address;
    }).catch(function () { placeholder(ds.thumbUndecodable); });
  }

  function buildSeriesList() {
    var list = document.getElementById("viewer-series-list");
    data.series.forEach(function (series, index) {
      var li = document.createElement("li");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "viewer-series-button";
      var text = document.createElement("span");
      text.textContent = (series.modality || "") + " " + (series.number !== null ? series.number : "") +
        (series.description ? " · " + series.description : "") + " (" + series.count + ")";
      if (series.thumbnail) {
        var img = document.createElement("img");
        img.alt = "";
        img.width = 64; img.height = 64;
        // asked for a few at a time (askThumbnails); bytes that are not an image give the placeholder
        img.addEventListener("error", function () {
          if (img.parentNode) { img.replaceWith(thumbPlaceholder(ds.thumbUndecodable)); }
        }, { once: true });
        thumbQueue.push({ img: img, url: ds.frameUrl.replace(ZERO, series.thumbnail) + "?frame=0&quality=low&size=64" });
        button.appendChild(img);
      } else {
        // no object of the series has an image (reports, presentation states, key images...):
        // a labelled placeholder, and no frame asked for
        button.appendChild(thumbPlaceholder(series.kind));
      }
      button.appendChild(text);
      button.addEventListener("click", function () { selectSeries(index); stage.focus(); });
      li.appendChild(button);
      list.appendChild(li);
    });
  }

  // ---------------------------------------------------------------- window, zoom, cine

  var dragFrame = null;
  function setWindow(center, width, lowOnly) {
    state.center = center;
    state.width = width === null ? null : Math.max(1, width);
    if (!lowOnly) { load(); return; }
    // while dragging: at most one small frame per animation frame (stale answers are dropped)
    if (dragFrame === null) {
      dragFrame = window.requestAnimationFrame(function () { dragFrame = null; load({ lowOnly: true }); });
    }
  }

  function currentWindow() {
    if (state.center !== null) { return [state.center, state.width]; }
    var text = state.fileWindow || root.dataset.shownWindow || "40/400";
    var parts = text.split("/").map(Number);
    return [parts[0] || 0, parts[1] || 400];
  }

  function zoomBy(factor) {
    if (state.noImage) { return; }
    state.zoom = Math.max(0.1, Math.min(20, state.zoom * factor));
    draw();
  }

  function fit() { if (state.noImage) { return; } state.zoom = 1; state.panX = state.panY = 0; draw(); }

  function stopCine() {
    if (state.cine) { window.clearInterval(state.cine); state.cine = null; }
    cineButton.setAttribute("aria-pressed", "false");
    cineButton.textContent = ds.textPlay;
  }

  function toggleCine() {
    if (state.cine) { stopCine(); return; }
    if (state.stopped || state.total < 2) { return; }
    cineButton.setAttribute("aria-pressed", "true");
    cineButton.textContent = ds.textPause;
    state.cine = window.setInterval(function () {
      var next = (state.pos + 1) % state.total;
      if (!state.stack[next]) {  // waits for the next page of a long series
        if (!recordOf(state.series).failed) { fetchPage(state.series); }
        return;
      }
      state.pos = next;
      updatePosition();
      load();
    }, 1000 / Number(fpsSelect.value || 10));
  }

  function toggleInvert() {
    if (state.noImage) { return; }
    state.invert = !state.invert;
    invertButton.setAttribute("aria-pressed", String(state.invert));
    draw();
  }

  // ---------------------------------------------------------------- input

  document.getElementById("viewer-presets").addEventListener("click", function (event) {
    var button = event.target.closest("button[data-preset]");
    if (!button) { return; }
    if (button.dataset.preset === "default") { setWindow(null, null); return; }
    setWindow(Number(button.dataset.center), Number(button.dataset.width));
  });
  document.getElementById("viewer-zoom-in").addEventListener("click", function () { zoomBy(1.25); });
  document.getElementById("viewer-zoom-out").addEventListener("click", function () { zoomBy(0.8); });
  document.getElementById("viewer-fit").addEventListener("click", fit);
  invertButton.addEventListener("click", toggleInvert);
  cineButton.addEventListener("click", toggleCine);
  fpsSelect.addEventListener("change", function () { if (state.cine) { stopCine(); toggleCine(); } });
  slider.addEventListener("input", function () { go(Number(slider.value) - 1); });
  root.querySelectorAll("input[name=viewer-tool]").forEach(function (radio) {
    radio.addEventListener("change", function () { if (radio.checked) { state.tool = radio.value; } });
  });

  function panBy(dx, dy) { if (state.noImage) { return; } state.panX += dx; state.panY += dy; draw(); }

  // Keyboard window/level, for every modality (the presets are CT's): steps relative to the
  // current window, so they suit a CT in HU as well as an MR's arbitrary units. A held key
  // (auto-repeat) asks for small frames only, like a drag; releasing it loads the full frame.
  function windowBy(centerSteps, widthFactor, held) {
    if (state.noImage) { return; }
    var win = currentWindow(), step = Math.max(win[1], 10) / 20;
    if (held) { state.dragWindow = true; }
    setWindow(win[0] + centerSteps * step, win[1] * widthFactor, held);
  }

  stage.addEventListener("keydown", function (event) {
    if (state.stopped) { return; }
    // leave the browser's and the screen reader's shortcuts alone (Ctrl and + zooms the page)
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var handled = true, move = Math.max(stage.clientWidth, 100) / 10;
    if (event.shiftKey && event.key.indexOf("Arrow") === 0) {  // Shift+arrows: pan
      panBy({ ArrowLeft: -move, ArrowRight: move }[event.key] || 0, { ArrowUp: -move, ArrowDown: move }[event.key] || 0);
      event.preventDefault();
      return;
    }
    switch (event.key) {
      case "w": windowBy(0, 0.8, event.repeat); break;  // window narrower (more contrast)
      case "W": windowBy(0, 1.25, event.repeat); break;  // window wider
      case "l": windowBy(-1, 1, event.repeat); break;  // level lower (brighter)
      case "L": windowBy(1, 1, event.repeat); break;  // level higher (darker)
      case "ArrowDown": case "ArrowRight": go(state.pos + 1); break;
      case "ArrowUp": case "ArrowLeft": go(state.pos - 1); break;
      case "PageDown": go(state.pos + 10); break;
      case "PageUp": go(state.pos - 10); break;
      case "Home": go(0); break;
      case "End": go(state.total - 1); break;
      case "+": case "=": zoomBy(1.25); break;
      case "-": zoomBy(0.8); break;
      case "0": fit(); break;
      case "i": case "I": toggleInvert(); break;
      case " ": toggleCine(); break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  });
  stage.addEventListener("keyup", function () {
    if (state.dragWindow && !gesture && !state.stopped) { state.dragWindow = false; load(); }
  });

  var wheelRest = 0;
  stage.addEventListener("wheel", function (event) {
    event.preventDefault();
    if (state.stopped) { return; }
    if (event.ctrlKey) { zoomBy(event.deltaY < 0 ? 1.1 : 0.9); return; }
    wheelRest += event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
    var steps = Math.trunc(wheelRest / 50);
    if (steps) { wheelRest -= steps * 50; go(state.pos + steps); }
  }, { passive: false });

  var pointers = new Map();
  var gesture = null;

  function pinchInfo() {
    var pts = Array.from(pointers.values());
    var dx = pts[0].x - pts[1].x, dy = pts[0].y - pts[1].y;
    return { dist: Math.hypot(dx, dy) || 1, mx: (pts[0].x + pts[1].x) / 2, my: (pts[0].y + pts[1].y) / 2 };
  }

  stage.addEventListener("pointerdown", function (event) {
    stage.focus();
    if (state.stopped) { return; }
    stage.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (pointers.size === 2) {
      var p = pinchInfo();
      gesture = { kind: "pinch", dist: p.dist, mx: p.mx, my: p.my, zoom: state.zoom, panX: state.panX, panY: state.panY };
    } else if (pointers.size === 1) {
      var tool = event.button === 2 ? "window" : state.tool;
      if (state.noImage) { tool = "scroll"; }  // no image to window, move or zoom: drags go through the stack
      gesture = { kind: tool, x: event.clientX, y: event.clientY, pos: state.pos, zoom: state.zoom,
                  panX: state.panX, panY: state.panY, win: currentWindow() };
    }
  });

  stage.addEventListener("pointermove", function (event) {
    if (!pointers.has(event.pointerId) || !gesture) { return; }
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (gesture.kind === "pinch" && pointers.size === 2) {
      if (state.noImage) { return; }  // no image to zoom or move (the next one would open zoomed)
      var p = pinchInfo();
      state.zoom = Math.max(0.1, Math.min(20, gesture.zoom * p.dist / gesture.dist));
      state.panX = gesture.panX + (p.mx - gesture.mx);
      state.panY = gesture.panY + (p.my - gesture.my);
      draw();
      return;
    }
    var dx = event.clientX - gesture.x, dy = event.clientY - gesture.y;
    if (gesture.kind === "scroll") {
      var step = Math.max(4, stage.clientHeight / Math.max(state.total, 1) / 2);
      go(gesture.pos + Math.round(dy / step));
    } else if (gesture.kind === "pan") {
      state.panX = gesture.panX + dx; state.panY = gesture.panY + dy; draw();
    } else if (gesture.kind === "zoom") {
      state.zoom = Math.max(0.1, Math.min(20, gesture.zoom * Math.exp(-dy / 200))); draw();
    } else if (gesture.kind === "window") {
      var scale = Math.max(gesture.win[1], 10) / 256;
      state.dragWindow = true;
      setWindow(gesture.win[0] - dy * scale, gesture.win[1] + dx * scale * 2, true);
    }
  });

  function endPointer(event) {
    pointers.delete(event.pointerId);
    if (pointers.size === 0) {
      if (state.dragWindow && !state.stopped) { state.dragWindow = false; load(); }
      gesture = null;
    }
  }
  stage.addEventListener("pointerup", endPointer);
  stage.addEventListener("pointercancel", endPointer);
  stage.addEventListener("contextmenu", function (event) { event.preventDefault(); });

  // ---------------------------------------------------------------- session end

  // the server closes a session idle for a while (reason "timeout"); activity without new
  // frames (reading one image) keeps it open with a heartbeat, at most every two minutes
  var active = false;
  ["pointerdown", "keydown", "wheel"].forEach(function (name) {
    root.addEventListener(name, function () { active = true; }, { passive: true });
  });
  window.setInterval(function () {
    if (!active || closed || document.visibilityState !== "visible") { return; }
    active = false;
    var form = new FormData();
    form.append("csrfmiddlewaretoken", csrf ? csrf.value : "");
    form.append("session", data.session);
    fetch(ds.heartbeatUrl, { method: "POST", body: form, credentials: "same-origin" }).catch(function () {});
  }, 120000);

  // whether the reader may still view the images, asked on a timer (not activity: it keeps neither
  // the viewer session nor the sign-in alive), so that a revoked share or an ended tumor board
  // stops the viewer though no frame is asked for; refused (403, 404, or sent to sign in): stop.
  // Allowed, it also says whether the diagnostic original is still the reader's: once not, previews
  // (toPreview)
  function checkAccess() {
    if (state.stopped || closed || document.visibilityState !== "visible") { return; }
    fetch(ds.accessUrl, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.redirected) {  // sent to sign in
          if (!state.stopped) { stop(ds.msgDenied); }
        } else if (response.status === 403 || response.status === 404) {
          response.json().catch(function () { return {}; }).then(function (body) {
            if (!state.stopped) { stop(deniedMessage(body), body); }
          });
        } else if (response.ok) {
          // still allowed, but perhaps no longer the diagnostic original: previews from now on
          response.json().catch(function () { return {}; }).then(function (body) {
            if (body.access === true && body.diagnostic === false) { toPreview(); }
          });
        }
      }).catch(function () {});  // offline: asked again at the next tick
  }
  var accessTimer = window.setInterval(checkAccess, Number(ds.accessCheckMs) || 20000);
  document.addEventListener("visibilitychange", checkAccess);  // a tab shown again asks at once

  var closed = false;
  function sendClose() {
    if (closed) { return; }
    closed = true;
    var form = new FormData();
    form.append("csrfmiddlewaretoken", csrf ? csrf.value : "");
    form.append("session", data.session);
    form.append("frames", String(state.frames));
    if (navigator.sendBeacon) {
      navigator.sendBeacon(ds.closeUrl, form);
    } else {
      fetch(ds.closeUrl, { method: "POST", body: form, credentials: "same-origin", keepalive: true });
    }
  }
  window.addEventListener("pagehide", sendClose);
  window.addEventListener("pagehide", dropFrames);  // the page left: its frames are let go
  // the page brought back by Back or Forward from the browser's memory (its back/forward cache),
  // its frames let go and its session closed as it was left: it is loaded again, so that the
  // server decides again whether its reader may still view the images, and the access check and
  // the session start again (else the image stayed on screen with neither, a revoked share too)
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  // ---------------------------------------------------------------- start

  if (data.series.length && data.series[0].instances) {  // the first series' first page came with the page
    addInstances(recordOf(0), data.series[0].instances);
    recordOf(0).next = typeof data.series[0].next === "number" ? data.series[0].next : null;
  }
  window.addEventListener("resize", resize);
  root.dataset.mode = state.mode;  // diagnostic or preview (data-mode), until the original is withdrawn
  reportKept();
  buildSeriesList();
  askThumbnails();
  resize();
  if (!data.series.length) {
    setLabel("none");
    showMessage(ds.msgEmpty);
    setImageShown(false);
  } else {
    selectSeries(0);
  }
})();
