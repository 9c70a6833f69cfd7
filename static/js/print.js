/* A Print button (button[data-print]) prints the page; the print rules in lightbox.css leave out
   the navigation, the footer and anything marked .no-print, so that paper carries only what the
   page is for (the recovery codes and what they are). The button is hidden until this script runs:
   without it the browser's own Print menu does the same. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll("button[data-print]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
