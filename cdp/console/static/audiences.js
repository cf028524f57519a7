// Audiences: follow the syncs started here. While a job is queued or running,
// ask the server for its state every two seconds; show it, and reload the page
// once it is over (so the destinations table shows the new numbers).
"use strict";
(function () {
  var table = document.getElementById("sync-jobs");
  if (!table || !window.fetch) { return; }
  var base = table.getAttribute("data-poll");
  var words = {
    queued: table.getAttribute("data-queued"),
    running: table.getAttribute("data-running")
  };
  function active() {
    return Array.prototype.slice.call(
      table.querySelectorAll('tr[data-state="queued"], tr[data-state="running"]'));
  }
  function poll() {
    var rows = active();
    if (!rows.length) { return; }
    Promise.all(rows.map(function (row) {
      return fetch(base + encodeURIComponent(row.getAttribute("data-job")),
                   { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (answer) { return answer.ok ? answer.json() : null; })
        .then(function (job) {
          if (!job) { return false; }
          if (job.state === "done" || job.state === "failed") { return true; }
          if (job.state !== row.getAttribute("data-state")) {
            row.setAttribute("data-state", job.state);
            row.querySelector(".job-state").textContent = words[job.state] || job.state;
          }
          return false;
        })
        .catch(function () { return false; });
    })).then(function (over) {
      if (over.indexOf(true) >= 0) { window.location.reload(); } else { window.setTimeout(poll, 2000); }
    });
  }
  window.setTimeout(poll, 1000);
})();
