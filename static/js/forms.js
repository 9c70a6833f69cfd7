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
