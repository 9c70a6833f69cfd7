/* A button that shows and hides the element after it, on a phone: the header's Menu (the
   navigation and tools) and a list's Filters. The button says its state to a screen reader
   (aria-expanded) and the style sheet hides the next element while it is "false", on a phone
   only: wider screens show it and not the button. The server renders the first state (the menu
   closed; the filters open when one is in use), so nothing moves when this script runs; without
   JavaScript css/noscript.css shows everything and no button. */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll(".disclosure-toggle"), function (button) {
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") === "true";
      button.setAttribute("aria-expanded", open ? "false" : "true");
    });
  });
})();
