// Live progress of an action (a drill, an ingest, an audit): polls
// /api/jobs/ID once a second and updates the page's text. The page works
// without it (it reloads itself every two seconds then). Writers' text
// only ever goes in through textContent.
"use strict";
(function () {
  var box = document.getElementById("job");
  if (!box) { return; }
  var id = box.getAttribute("data-job");
  function set(elID, text) {
    var el = document.getElementById(elID);
    if (el) { el.textContent = text; }
  }
  function poll() {
    fetch("/api/jobs/" + encodeURIComponent(id), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (j) {
        set("state", j.state);
        set("phase", j.phase || "");
        set("percent", j.total ? j.percent + "%" : "");
        document.getElementById("bar").value = j.percent;
        set("result", j.result || "");
        document.getElementById("result").className = j.state;
        set("log", (j.log || []).join("\n") + "\n");
        box.setAttribute("data-state", j.state);
        if (j.finished) {
          var link = document.getElementById("job-link");
          if (j.link) { link.setAttribute("href", j.link); }
          link.hidden = false;
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
