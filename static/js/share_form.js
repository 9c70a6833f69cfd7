/* The share form shows only the fields of the chosen kind of recipient: an e-mail address for a
   named person or an invited address, the members and name for a group, the use limit, second
   factor and passcode for an anonymous link. Each such field's widget names its kinds
   (data-recipient-kinds, from apps.sharing.forms.KIND_FIELDS); the others take every kind. A field
   of another kind is hidden and disabled, so that what was typed in it before the kind was changed
   is not sent (the server would refuse an anonymous link's terms on a share to a person). A field
   the server refused for the kind sent stays in sight with its error until the kind is changed.
   Without JavaScript every field shows and the server refuses or drops what does not apply. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-share-form]");
  if (!form) { return; }
  var kind = form.querySelector("select[name='recipient_kind']");
  if (!kind) { return; }
  var widgets = form.querySelectorAll("[data-recipient-kinds]");
  var sent = kind.value;

  function show() {
    var chosen = kind.value;
    Array.prototype.forEach.call(widgets, function (widget) {
      var field = widget.closest(".field") || widget.parentNode;
      var applies = widget.getAttribute("data-recipient-kinds").split(" ").indexOf(chosen) !== -1;
      var refused = chosen === sent && field.classList.contains("has-error");
      field.hidden = !applies && !refused;
      widget.disabled = !applies && !refused;
    });
  }
  kind.addEventListener("change", show);
  show();
  // a page restored from the back-forward cache keeps its fields' state: shown again as chosen
  window.addEventListener("pageshow", show);
})();
