/* Starts ReDoc on /api/redoc/ (drf-spectacular's template does it in an inline script, which
   the site's CSP refuses). ReDoc injects its styles as <style> elements: it gives them the
   nonce of this script's tag, which the page's CSP allows. */
"use strict";
(function () {
  var container = document.getElementById("redoc-container");
  var options = container.dataset.settings ? JSON.parse(container.dataset.settings) : {};
  options.nonce = document.currentScript.nonce;
  Redoc.init(container.dataset.specUrl, options, container);
})();
