// The console's script: small helpers shared by the screens. Pages work
// without it (forms post normally); it adds the live parts.
"use strict";
(function () {
  // Any element with data-confirm asks before its form is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var ask = form.getAttribute("data-confirm");
    if (ask && !window.confirm(ask)) { event.preventDefault(); }
  });
})();
