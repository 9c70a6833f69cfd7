/* A table wider than the screen scrolls inside its .table-wrap. Such a wrapper is made a named,
   focusable region, so that it can be scrolled from the keyboard (WCAG 2.1.1) and a screen reader
   says what it holds (the table's caption). A table that fits adds no stop to the Tab order. */
(function () {
  "use strict";
  function mark(wrap) {
    var scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    if (scrolls && !wrap.hasAttribute("tabindex")) {
      var caption = wrap.querySelector("caption");
      wrap.setAttribute("tabindex", "0");
      wrap.setAttribute("role", "region");
      if (caption) { wrap.setAttribute("aria-label", caption.textContent.trim()); }
    } else if (!scrolls && wrap.getAttribute("role") === "region") {
      wrap.removeAttribute("tabindex");
      wrap.removeAttribute("role");
      wrap.removeAttribute("aria-label");
    }
  }
  function markAll() { Array.prototype.forEach.call(document.querySelectorAll(".table-wrap"), mark); }
  markAll();
  var pending = null;
  window.addEventListener("resize", function () {
    if (pending) { window.clearTimeout(pending); }
    pending = window.setTimeout(markAll, 150);
  });
})();
