/* Hearth web UI: a little progressive enhancement. Every page works without it.
   - forms with data-confirm ask first; selects with class autosubmit submit on change
   - the query log tails new rows (built with textContent: names are attacker-controlled text)
   - the lists page follows a running update
   - a filter box hides non-matching service toggles */
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
  });
  document.addEventListener("change", function (ev) {
    if (ev.target.matches("select.autosubmit")) { ev.target.form.submit(); }
  });

  var preset = document.querySelector('#wizard select[name="preset"]');   /* the wizard: the preset's categories */
  if (preset) {
    preset.addEventListener("change", function () {
      document.querySelectorAll(".preset-categories").forEach(function (box) {
        box.hidden = box.getAttribute("data-preset") !== preset.value;
      });
    });
  }

  document.querySelectorAll("input.filter[data-filter]").forEach(function (box) {
    box.addEventListener("input", function () {
      var needle = box.value.trim().toLowerCase();
      var groups = [];
      document.querySelectorAll(box.getAttribute("data-filter")).forEach(function (label) {
        label.hidden = Boolean(needle) && label.textContent.toLowerCase().indexOf(needle) < 0;
        var det = label.closest("details");
        if (det && groups.indexOf(det) < 0) { groups.push(det); }
      });
      groups.forEach(function (det) {      /* a group with no match goes too; one with a match opens */
        var any = Array.prototype.some.call(det.querySelectorAll("label"), function (l) { return !l.hidden; });
        det.hidden = !any;
        if (needle && any) { det.open = true; }
      });
      var none = box.parentNode.querySelector(".filter-none");
      if (none) { none.hidden = !needle || groups.some(function (det) { return !det.hidden; }); }
    });
  });

  function show(text) {   /* as the server's "show" filter: unprintables as escapes */
    return String(text == null ? "" : text).replace(/[\u0000-\u001f\u007f-\u009f]/g, function (c) {
      return "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2);
    });
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }

  var log = document.getElementById("log");
  var live = document.getElementById("live");
  if (log && live) {
    var after = parseInt(log.getAttribute("data-after"), 10) || 0;
    var canEdit = log.getAttribute("data-can-edit") === "1";
    var shared = log.getAttribute("data-shared") === "1";
    var params = new URLSearchParams(window.location.search);
    var tail = function () {
      if (!live.checked || document.hidden) { return; }
      var q = new URLSearchParams();
      ["device", "client", "result", "q", "node"].forEach(function (k) { if (params.get(k)) { q.set(k, params.get(k)); } });
      q.set("after_id", after);
      fetch("/api/v1/querylog?" + q.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (rows) {
          var body = log.tBodies[0];
          var none = body.querySelector("tr.none");
          if (rows.length && none) { none.remove(); }
          rows.reverse().forEach(function (row) {
            after = Math.max(after, row.id);
            var tr = document.createElement("tr");
            if (row.blocked) { tr.className = "blocked"; }
            cell(tr, new Date(row.ts * 1000).toLocaleString(document.documentElement.lang));
            cell(tr, row.device || row.client);
            cell(tr, show(row.qname), "name");
            cell(tr, row.type_text || row.qtype);
            var res = cell(tr, "");
            var tag = document.createElement("span");
            tag.className = "tag " + (row.blocked ? "bad" : "ok");
            tag.textContent = log.getAttribute(row.blocked ? "data-labels-blocked" : "data-labels-allowed");
            res.appendChild(tag);
            if (row.reason) {
              var small = document.createElement("small");
              small.className = "reason";
              small.title = show(row.reason);
              small.textContent = " " + show(row.reason_text || row.reason);
              res.appendChild(small);
            }
            cell(tr, show(row.answer_text != null ? row.answer_text : row.answer), "answer");
            if (shared) { cell(tr, row.node || "", "node"); }
            if (canEdit) {
              var td = cell(tr, "");
              var form = document.createElement("form");
              form.method = "post";
              form.className = "inline";
              form.action = "/profiles/" + encodeURIComponent(row.profile);
              [["csrf_token", csrf], ["action", "rule"], ["domain", row.qname], ["next", window.location.pathname + window.location.search]].forEach(function (kv) {
                var i = document.createElement("input"); i.type = "hidden"; i.name = kv[0]; i.value = kv[1]; form.appendChild(i);
              });
              var b = document.createElement("button");
              b.name = "rule"; b.value = row.blocked ? "allow" : "block";
              b.className = "small" + (row.blocked ? "" : " danger");
              b.textContent = log.getAttribute(row.blocked ? "data-labels-allow" : "data-labels-block");
              form.appendChild(b);
              var p = document.createElement("small"); p.textContent = " " + (row.profile_text || row.profile); form.appendChild(p);
              td.appendChild(form);
            }
            body.insertBefore(tr, body.firstChild);
          });
          while (body.rows.length > 500) { body.deleteRow(body.rows.length - 1); }
        })
        .catch(function () {});
    };
    setInterval(tail, 2000);
  }

  var progress = document.getElementById("lists-progress");
  var updateForm = document.getElementById("lists-update");
  if (progress) {
    var pre = progress.querySelector("pre");
    var status = progress.querySelector(".status");
    var poll = function () {
      fetch("/api/v1/lists/update", {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (job) {
        pre.textContent = job.lines.join("\n");
        pre.scrollTop = pre.scrollHeight;
        if (job.running) { setTimeout(poll, 1000); } else { window.location.reload(); }
      }).catch(function () { setTimeout(poll, 3000); });
    };
    if (progress.getAttribute("data-running") === "1") { setTimeout(poll, 1000); }
    if (updateForm) {
      updateForm.addEventListener("submit", function (ev) {
        ev.preventDefault();
        fetch("/api/v1/lists/update", {method: "POST", credentials: "same-origin",
          headers: {"X-CSRFToken": csrf, "Content-Type": "application/json"}, body: "{}"})
          .then(function () {
            progress.hidden = false;
            updateForm.querySelector("button").disabled = true;
            status.textContent = "…";
            setTimeout(poll, 500);
          });
      });
    }
  }
}());
