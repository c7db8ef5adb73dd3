/* Tells the portal the browser's time zone (a cookie read by TimeZoneMiddleware) so that
   times are shown in the user's own zone; a file, not an inline script (the CSP). */
"use strict";
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) { return; }
  var value = encodeURIComponent(zone);
  if (document.cookie.split("; ").indexOf("portal_tz=" + value) !== -1) { return; }
  document.cookie = "portal_tz=" + value + "; path=/; max-age=31536000; SameSite=Lax" +
    (location.protocol === "https:" ? "; Secure" : "");
})();
