/* Keeps the browser's time zone (an IANA name such as "Europe/Madrid") in the lightbox_tz
   cookie, so that the portal shows times, and reads times typed into forms, in the reader's own
   zone (apps.core.middleware.TimeZoneMiddleware). The cookie holds no personal data. A page drawn
   before the cookie existed names the zone it used in its footer; the next page uses the
   browser's. */
(function () {
  "use strict";
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  // IANA names are letters, digits and _ + - /: all allowed in a cookie value as they are
  if (!zone || zone.length > 64 || !/^[A-Za-z0-9_+\-\/]+$/.test(zone)) { return; }
  var current = (document.cookie.match(/(?:^|;\s*)lightbox_tz=([^;]*)/) || [])[1];
  if (current === zone) { return; }
  document.cookie = "lightbox_tz=" + zone + "; path=/; max-age=31536000; samesite=lax" +
    (location.protocol === "https:" ? "; secure" : "");
})();
