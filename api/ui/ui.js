// The status page's only script: it draws GET /v1/status and GET /ui/refusals every two
// seconds. Data reaches the page through textContent only, never as markup.
"use strict";
(function () {
  var period = 2000;
  var day = 24 * 3600 * 1000;
  var contactWarn = 10 * 1000;

  function $(id) { return document.getElementById(id); }

  function text(id, s) { $(id).textContent = s; }

  function cell(tag, s, cls) {
    var c = document.createElement(tag);
    c.textContent = s;
    if (cls) { c.className = cls; }
    return c;
  }

  function row(cells, label) {
    var tr = document.createElement("tr");
    cells.forEach(function (c, i) {
      if (label) { c.setAttribute("data-label", label[i]); }
      tr.appendChild(c);
    });
    return tr;
  }

  // fill replaces the rows of a table's body.
  function fill(id, rows) {
    var body = $(id).tBodies[0];
    body.replaceChildren.apply(body, rows);
  }

  // roughly says a duration in words a person reads at a glance.
  function roughly(ms) {
    var s = Math.abs(ms) / 1000;
    if (s < 1) { return Math.round(s * 1000) + " ms"; }
    if (s < 60) { return s.toFixed(1) + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s"; }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min"; }
    return Math.floor(s / 86400) + " days";
  }

  function ago(t, now) {
    return roughly(now - Date.parse(t)) + " ago";
  }

  function stamp(t) {
    return new Date(Date.parse(t)).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // expiryClass colours a deadline: 30, 7 and 1 day ahead, and past.
  function expiryClass(t, now) {
    var left = Date.parse(t) - now;
    if (left <= 1 * day) { return "exp-1"; }
    if (left <= 7 * day) { return "exp-7"; }
    if (left <= 30 * day) { return "exp-30"; }
    return "";
  }

  function expiryText(t, now) {
    var left = Date.parse(t) - now;
    var d = stamp(t).slice(0, 10);
    return left < 0 ? d + " (expired " + roughly(left) + " ago)" : d + " (in " + roughly(left) + ")";
  }

  function reasonText(r) {
    return r && r.code ? r.text + " (" + r.code + ")" : "none";
  }

  function percent(p) {
    return p < 0 ? "not applicable" : p.toFixed(1) + " %";
  }

  var memberLabels = ["Name", "Role", "Voter", "Lag", "Sync", "Last contact", "Certificate expires", "Reason"];

  function memberRow(m, st, now) {
    var name = cell("th", m.name + (m.name === st.node ? " (answered)" : ""));
    name.setAttribute("scope", "row");
    var role = cell("td", m.role || "unknown", "role role-" + (m.role || "unknown").toLowerCase());
    var contact = m.role === "PRIMARY" ? "is the primary" : (m.lastContact ? ago(m.lastContact, now) : "never");
    // As `mirrorkv status --warn-contact`: a member that has not heard from the primary for
    // longer than this is flagged, in words as well as in colour.
    var silent = m.role !== "PRIMARY" && st.primary && m.lastContact && now - Date.parse(m.lastContact) > contactWarn;
    if (silent) { contact += " (no contact for more than " + contactWarn / 1000 + " s: check it)"; }
    var cert = m.certNotAfter ? cell("td", expiryText(m.certNotAfter, now), expiryClass(m.certNotAfter, now)) : cell("td", "unknown");
    var tr = row([name, role, cell("td", m.voter ? "yes" : "no"), cell("td", String(m.lag)),
      cell("td", percent(m.syncPercent)), cell("td", contact, silent ? "reason" : ""), cert,
      cell("td", reasonText(m.reason), m.reason && m.reason.code ? "reason" : "")], memberLabels);
    tr.setAttribute("data-member", m.name);
    tr.setAttribute("data-role", m.role || "");
    return tr;
  }

  var expiryLabels = ["Member", "What", "When", "Reason"];
  var materials = { leaf: "certificate", ca: "CA", crl: "CRL next update" };

  function expiryRows(st, now) {
    var rows = [];
    (st.members || []).forEach(function (m) {
      (m.expiries || []).forEach(function (x) {
        var what = (materials[x.material] || x.material) + " " + x.subject + " (" + x.port + " port)";
        rows.push(row([cell("td", m.name), cell("td", what),
          cell("td", expiryText(x.at, now), expiryClass(x.at, now)), cell("td", reasonText(x.reason))], expiryLabels));
      });
    });
    if (rows.length === 0) {
      var none = cell("td", "nothing runs out within 30 days");
      none.colSpan = 4;
      rows.push(row([none]));
    }
    return rows;
  }

  function drawStatus(st) {
    var now = Date.now();
    text("group", st.group ? "group " + st.group : "");
    // The live region changes only when the primary does, so that a screen reader announces
    // a failover and not every refresh.
    var primary = st.primary ? st.primary : "none: the group has no primary now";
    if (st.primary && st.primarySince) { primary += ", since " + stamp(st.primarySince); }
    if ($("primary").textContent !== primary) { text("primary", primary); }
    text("primary-for", st.primary && st.primarySince ? "for " + roughly(now - Date.parse(st.primarySince)) : "");
    text("node", st.node);
    text("role", st.role + (st.previousRole ? " (was " + st.previousRole + ")" : ""));
    var members = st.members || [];
    text("sync", st.syncNodes + " of " + members.length + " members, " + st.activeNodes + " active");
    text("index", st.appliedIndex + " / " + st.commitIndex);
    text("reason", reasonText(st.reason));
    fill("members", members.map(function (m) { return memberRow(m, st, now); }));
    fill("expiries", expiryRows(st, now));
  }

  var refusalLabels = ["Port", "Reason", "Refused"];

  function drawRefusals(sum) {
    var span = Date.parse(sum.until) - Date.parse(sum.since);
    text("refusals-caption", "TLS handshakes this member refused " +
      // The member counts from its newest reading at least an hour old: a little more than
      // an hour when the page is open, more when nobody looked for a while.
      (span >= 3600 * 1000 ? "in the last " + roughly(span) : "since it started " + roughly(span) + " ago") +
      " (counted from " + stamp(sum.since) + "), by port and reason");
    var rows = (sum.refusals || []).map(function (r) {
      return row([cell("td", r.port), cell("td", r.text + " (" + r.code + ")"), cell("td", String(r.count))], refusalLabels);
    });
    if (rows.length === 0) {
      var none = cell("td", "none");
      none.colSpan = 3;
      rows.push(row([none]));
    }
    fill("refusals", rows);
  }

  function get(url) {
    return fetch(url, { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) { throw new Error((body && body.error) || (url + ": HTTP " + r.status)); }
          return body;
        });
      });
  }

  function poll() {
    Promise.all([get("/v1/status"), get("/ui/refusals")]).then(function (res) {
      drawStatus(res[0]);
      drawRefusals(res[1]);
      $("conn").className = "ok";
      text("conn", "Live: updated " + stamp(new Date().toISOString()).slice(11));
    }).catch(function (err) {
      $("conn").className = "error";
      text("conn", "Cannot read the status from this member (" + err.message + "); retrying every " + period / 1000 + " s.");
    }).then(function () {
      setTimeout(poll, period);
    });
  }

  poll();
})();
