// weiquan console: the one script. Every page works without it; where a page
// shows the log's size (data-live="tree-size"), it keeps the number current
// by reading the public checkpoint from this same server.
(function () {
  "use strict";
  var el = document.querySelector('[data-live="tree-size"]');
  if (!el || !window.fetch) { return; }
  var fmt = new Intl.NumberFormat(document.documentElement.lang || "zh-CN");
  function refresh() {
    fetch("/log/checkpoint", { cache: "no-store", credentials: "omit" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var size = parseInt(text.split("\n")[1], 10);
        if (!isNaN(size)) { el.textContent = fmt.format(size); }
      })
      .catch(function () { /* the number shown stays; the next tick tries again */ });
  }
  setInterval(refresh, 5000);
})();
