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
