/* A form sent back refused shows its errors beside the fields; on a phone or tablet the first
   of them is often screens below the top of the reloaded page, and the reader, who sees the top,
   takes the refusal for nothing having happened. Bring the first error into view, with its field
   just above it, and give it focus so that a screen reader reads it too. The error, not the
   field, takes focus: a focused text field would open a phone's keyboard over the message. */
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main) { return; }
  var first = main.querySelector("form .errors, form p.error");
  if (!first) { return; }
  if (!first.hasAttribute("tabindex")) { first.setAttribute("tabindex", "-1"); }
  first.focus({ preventScroll: true });
  first.scrollIntoView({ block: "center" });
})();

/* A long list of choices (a tumor board's cases and participants, a share's studies) has a box
   above it that narrows it to the choices whose label holds what is typed; ticked choices stay in
   sight whatever is typed, so that nothing chosen is hidden. Without JavaScript the box stays
   hidden and the whole list is shown. */
(function () {
  "use strict";
  var boxes = document.querySelectorAll(".choices-filter");
  Array.prototype.forEach.call(boxes, function (box) {
    var input = box.querySelector("input");
    var list = document.getElementById(input.getAttribute("aria-controls"));
    if (!list) { return; }
    box.hidden = false;
    input.addEventListener("input", function () {
      var wanted = input.value.trim().toLocaleLowerCase();
      Array.prototype.forEach.call(list.querySelectorAll(".choice"), function (choice) {
        var tick = choice.querySelector("input");
        var text = choice.textContent.toLocaleLowerCase();
        choice.hidden = wanted !== "" && !(tick && tick.checked) && text.indexOf(wanted) === -1;
      });
    });
  });
})();

/* A list searched on the server (a tumor board's cases, participants and host: an organization's
   thousands): the page holds the choices ticked (checkboxes; for one choice, radio buttons, the
   one chosen) and some matches of the search box, whose Search button draws the form again with
   the others (templates/includes/field.html). With this script
   the box asks the server for the matches as it is typed (the form's JSON, data-url) and puts
   them in place of the choices not ticked; what is ticked stays where it is. The status line
   below the box (aria-live) says how many match. Should the server not answer, the Search button
   does what it does without the script. */
(function () {
  "use strict";
  if (!window.fetch || !window.URLSearchParams) { return; }
  var boxes = document.querySelectorAll(".choices-search[data-url]");
  /* Enter in a form's other fields submits it with its first button, a list's Search (without the
     script, the form drawn again: nothing saved by surprise). With the script, Enter in a search
     box searches (below) and Enter elsewhere does what the form's main button does, as before. */
  var forms = [];
  Array.prototype.forEach.call(boxes, function (box) {
    var form = box.closest("form");
    if (form && forms.indexOf(form) === -1) { forms.push(form); }
  });
  forms.forEach(function (form) {
    var main = form.querySelector("button.primary[type=submit]");
    if (!main) { return; }
    form.addEventListener("keydown", function (event) {
      var field = event.target;
      if (event.key !== "Enter" || event.defaultPrevented || field.tagName !== "INPUT" ||
          field.closest(".choices-search")) { return; }
      event.preventDefault();
      if (form.requestSubmit) { form.requestSubmit(main); } else { main.click(); }
    });
  });
  Array.prototype.forEach.call(boxes, function (box) {
    var input = box.querySelector("input[type=search]");
    var button = box.querySelector("button[type=submit]");
    if (!input || !button) { return; }
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var status = document.getElementById(input.getAttribute("aria-describedby"));
    if (!list || !status) { return; }
    var name = button.value, prefix = list.id.replace(/_choices$/, "");
    var type = box.getAttribute("data-input") === "radio" ? "radio" : "checkbox";
    var timer = null, asked = 0, fallback = false;

    function ticks() { return list.querySelectorAll("input[type=" + type + "]"); }

    function show(data) {
      var kept = {};
      Array.prototype.forEach.call(ticks(), function (tick) {
        // kept: the ticked ones, and an optional single choice's "none" (value ""), drawn first
        if (tick.checked || tick.value === "") { kept[tick.value] = true; } else { tick.closest(".choice").remove(); }
      });
      Array.prototype.forEach.call(list.querySelectorAll("p.help"), function (p) { p.remove(); });
      data.choices.forEach(function (choice) {
        if (kept[choice.value]) { return; }
        var row = document.createElement("div");
        var tick = document.createElement("input");
        var label = document.createElement("label");
        row.className = "choice";
        tick.type = type;
        tick.name = name;
        tick.value = choice.value;
        tick.id = prefix + "_v" + choice.value;
        label.htmlFor = tick.id;
        label.textContent = choice.label;
        row.appendChild(tick);
        row.appendChild(document.createTextNode(" "));
        row.appendChild(label);
        list.appendChild(row);
      });
      status.textContent = data.status;
    }

    function search() {
      window.clearTimeout(timer);
      var params = new URLSearchParams();
      params.set("q", input.value);
      Array.prototype.forEach.call(ticks(), function (tick) {
        if (tick.checked) { params.append("ticked", tick.value); }
      });
      var mine = ++asked;
      window.fetch(box.getAttribute("data-url") + "&" + params.toString(),
                   { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.json();
        })
        .then(function (data) { if (mine === asked) { show(data); } })
        .catch(function () {
          if (mine !== asked) { return; }
          fallback = true;  // the server's own search: the form drawn again, as without the script
          button.click();
        });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(search, 250);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); search(); }
    });
    button.addEventListener("click", function (event) {
      if (fallback) { return; }
      event.preventDefault();
      search();
    });
  });
})();

/* A form that changes something is sent once. On a slow network a second tap on its button (the
   first seemed to do nothing) sent it again: two shares with two live links, of which the sharer
   saw one, or the same note twice. Once a POST form is on its way its buttons are disabled (after
   the browser has taken the pressed button's name and value) and a further submit is refused;
   coming back to the page (the Back button) or a response that never replaced the page frees
   them again. */
(function () {
  "use strict";
  var FREE_AFTER = 15000;  // ms: no new page by then (a failed network): the form may be sent again
  function free(form) {
    delete form.dataset.sending;
    form.removeAttribute("aria-busy");
    Array.prototype.forEach.call(form.querySelectorAll("button[data-busy]"), function (button) {
      button.disabled = false;
      button.removeAttribute("data-busy");
    });
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || (form.getAttribute("method") || "").toLowerCase() !== "post") { return; }
    if (form.dataset.sending) { event.preventDefault(); return; }
    if (event.defaultPrevented) { return; }
    form.dataset.sending = "1";
    form.setAttribute("aria-busy", "true");
    window.setTimeout(function () {
      Array.prototype.forEach.call(form.querySelectorAll("button:not([type=button]):not(:disabled)"), function (button) {
        button.disabled = true;
        button.setAttribute("data-busy", "");
      });
    }, 0);
    window.setTimeout(function () { free(form); }, FREE_AFTER);
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { Array.prototype.forEach.call(document.querySelectorAll("form[data-sending]"), free); }
  });
})();
