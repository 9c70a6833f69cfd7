/* The share link is shown once (only its fingerprint is kept): a Copy link button puts it on the
   clipboard and says so, since selecting a long read-only field by hand on a phone or a tablet
   easily takes part of it. Where the clipboard refuses, the field is selected and the page says
   to copy it. The button is hidden until this script runs; a tap in the field selects all of it. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-status"));
    if (!field || !status) { return; }
    function selectAll() { field.focus(); field.setSelectionRange(0, field.value.length); }
    function fallback() {
      selectAll();
      try { return document.execCommand("copy"); } catch (e) { return false; }
    }
    function said(ok) {
      status.textContent = button.getAttribute(ok ? "data-copied" : "data-failed");
      if (!ok) { selectAll(); }
    }
    field.addEventListener("focus", selectAll);
    button.hidden = false;
    button.addEventListener("click", function () {
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { said(true); },
                                                         function () { said(fallback()); });
      } else {
        said(fallback());
      }
    });
  });
})();
