// Plantroom console: charts, the live alarm feed and session handling.
// No inline script runs on any page (Content-Security-Policy script-src
// 'self'); data for the charts comes in <script type="application/json">
// blocks or from the API with the session cookie.
(function () {
  "use strict";

  var msgs = {};
  try { msgs = JSON.parse(document.getElementById("i18n").textContent); } catch (e) { msgs = {}; }
  function t(key) { return msgs["js." + key] || key; }
  var lang = document.body.getAttribute("data-lang") || "zh-CN";
  var numFmt = new Intl.NumberFormat(lang, { maximumSignificantDigits: 3 });

  function dataBlock(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  function sessionExpired() {
    var b = document.getElementById("session-banner");
    if (b) b.hidden = false;
  }

  // Every chart drawn adds one; tests and the benchmark wait for
  // body[data-charts-drawn] to equal the number of charts on the page.
  // A chart whose data failed to load counts as drawn (it shows the error)
  // and adds one to body[data-charts-failed], its cause in data-error: the
  // page is done, with errors, at once rather than never.
  var chartsWanted = document.querySelectorAll("[data-chart]").length;
  var chartsDrawn = 0, chartsFailed = 0;
  function drawn(el, empty, failure) {
    el.setAttribute("data-drawn", empty ? "empty" : "1");
    if (failure) {
      chartsFailed++;
      el.setAttribute("data-error", String(failure));
      document.body.setAttribute("data-charts-failed", String(chartsFailed));
    }
    chartsDrawn++;
    document.body.setAttribute("data-charts-drawn", String(chartsDrawn));
    if (chartsDrawn >= chartsWanted && window.performance && performance.mark) {
      performance.mark("plantroom-charts-drawn");
      document.body.setAttribute("data-charts-done", "1");
    }
  }

  function emptyState(el, key) {
    el.innerHTML = "";
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = t(key);
    el.appendChild(p);
  }

  var charts = [];
  function chart(el, option) {
    el.innerHTML = "";
    var c = echarts.init(el, null, { renderer: "canvas" });
    c.on("finished", function once() { c.off("finished", once); drawn(el, false); });
    // No entrance animation: the figures are there at once (it held every
    // chart back about a second, "finished" waiting for it).
    option.animation = false;
    c.setOption(option);
    charts.push(c);
    return c;
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });

  var palette = ["#1f6feb", "#2da44e", "#bf8700", "#8250df", "#cf222e", "#0a7f8c"];
  var grid = { left: 8, right: 16, top: 28, bottom: 8, containLabel: true };

  function rankingChart(el, d) {
    if (!d.projects || !d.projects.length) { emptyState(el, "no_data"); drawn(el, true); return; }
    var names = d.projects.slice().reverse(), vals = d.kwh_per_m2.slice().reverse(), flags = d.flagged.slice().reverse();
    el.style.height = Math.max(220, names.length * 26 + 60) + "px";
    chart(el, {
      color: palette, grid: grid, tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      xAxis: { type: "value", name: "kWh/m²" },
      yAxis: { type: "category", data: names, axisLabel: { width: 110, overflow: "truncate" } },
      series: [{ type: "bar", name: "kWh/m²", data: vals.map(function (v, i) {
        return { value: v, itemStyle: { color: flags[i] ? "#bf8700" : "#1f6feb" } };
      }), label: { show: true, position: "right", formatter: function (p) { return numFmt.format(p.value) + (flags[p.dataIndex] ? " ⚠" : ""); } } }]
    });
  }

  function pieChart(el, items) {
    if (!items || !items.length || items.every(function (x) { return !x.value; })) { emptyState(el, "no_data"); drawn(el, true); return; }
    chart(el, {
      color: palette, tooltip: { trigger: "item", formatter: "{b}: {c} kWh ({d}%)" },
      legend: { bottom: 0, type: "scroll" },
      series: [{ type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"], avoidLabelOverlap: true,
        data: items.map(function (x) { return { name: x.label, value: x.value }; }),
        // On a narrow screen the names are in the legend only.
        label: el.clientWidth < 480 ? { position: "inside", formatter: "{d}%", color: "#fff" } : { formatter: "{b}\n{d}%" } }]
    });
  }

  function trendChart(el) {
    fetch(el.getAttribute("data-src"), { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { sessionExpired(); throw new Error("session"); }
      if (!r.ok) throw new Error("status " + r.status + " of " + el.getAttribute("data-src"));
      return r.json();
    }).then(function (d) {
      var pts = d.points || [];
      if (!pts.some(function (p) { return p.kwh > 0; })) { emptyState(el, "no_data"); drawn(el, true); return; }
      chart(el, {
        color: palette, grid: grid, tooltip: { trigger: "axis" }, legend: { top: 0 },
        xAxis: { type: "category", data: pts.map(function (p) { return p.month; }) },
        yAxis: [{ type: "value", name: "kWh" }, { type: "value", name: t("cost"), splitLine: { show: false } }],
        series: [
          { type: "bar", name: "kWh", data: pts.map(function (p) { return p.kwh; }) },
          { type: "line", name: t("cost"), yAxisIndex: 1, data: pts.map(function (p) { return p.cost; }) }
        ]
      });
    }).catch(function (e) {
      if (e.message !== "session") emptyState(el, "load_failed");
      drawn(el, true, e.message || "error");
    });
  }

  function dailyChart(el, d) {
    chart(el, {
      color: palette, grid: grid, tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: d.days.map(function (s) { return s.slice(5); }) },
      yAxis: { type: "value", name: "kWh" },
      series: [{ type: "bar", name: d.labels.kwh, data: d.kwh }]
    });
  }

  function seriesChart(el, d) {
    var metricSel = document.getElementById("metric"), rangeSel = document.getElementById("range");
    var c = null, first = true;
    function load() {
      var days = parseInt(rangeSel.value, 10) || 7;
      var to = new Date(), from = new Date(to.getTime() - days * 86400000);
      var q = new URLSearchParams({ metric: metricSel.value, from: from.toISOString().replace(/\.\d+Z$/, "Z"), to: to.toISOString().replace(/\.\d+Z$/, "Z") });
      el.setAttribute("aria-busy", "true");
      fetch("/api/v1/devices/" + encodeURIComponent(d.device) + "/series?" + q, { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { sessionExpired(); throw new Error("session"); }
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      }).then(function (s) {
        el.removeAttribute("aria-busy");
        var pts = s.points || [];
        if (!pts.length) {
          if (c) { c.dispose(); charts.splice(charts.indexOf(c), 1); c = null; }
          emptyState(el, "no_series");
          if (first) { first = false; drawn(el, true); }
          return;
        }
        var opt = {
          color: palette, grid: { left: 8, right: 16, top: 28, bottom: 60, containLabel: true },
          tooltip: { trigger: "axis" }, legend: { top: 0 },
          xAxis: { type: "time" }, yAxis: { type: "value", name: s.unit || "", scale: true },
          dataZoom: [{ type: "inside" }, { type: "slider", bottom: 8 }],
          series: [
            { type: "line", name: t("last"), showSymbol: false, data: pts.map(function (p) { return [p.t, p.last]; }) },
            { type: "line", name: t("min"), showSymbol: false, lineStyle: { type: "dotted", width: 1 }, data: pts.map(function (p) { return [p.t, p.min]; }) },
            { type: "line", name: t("max"), showSymbol: false, lineStyle: { type: "dotted", width: 1 }, data: pts.map(function (p) { return [p.t, p.max]; }) }
          ]
        };
        if (!c) { c = chart(el, opt); first = false; } else { c.setOption(opt, true); }
      }).catch(function (e) {
        el.removeAttribute("aria-busy");
        if (e.message !== "session") emptyState(el, "load_failed");
        if (first) { first = false; drawn(el, true, e.message || "error"); }
      });
    }
    metricSel.addEventListener("change", load);
    rangeSel.addEventListener("change", load);
    load();
  }

  function initCharts() {
    if (!chartsWanted) return;
    if (typeof echarts === "undefined") {
      document.querySelectorAll("[data-chart]").forEach(function (el) { emptyState(el, "load_failed"); drawn(el, true, "echarts not loaded"); });
      return;
    }
    var hq = dataBlock("hq-data"), pr = dataBlock("project-data"), dv = dataBlock("device-data");
    // The trend's data comes from the server: ask for it first, so that it
    // arrives while the other charts are drawn.
    var els = Array.prototype.slice.call(document.querySelectorAll("[data-chart]"));
    els.sort(function (a, b) { return (b.getAttribute("data-chart") === "trend") - (a.getAttribute("data-chart") === "trend"); });
    els.forEach(function (el) {
      switch (el.getAttribute("data-chart")) {
        case "ranking": rankingChart(el, hq); break;
        case "pie": pieChart(el, hq && hq[el.getAttribute("data-key")]); break;
        case "trend": trendChart(el); break;
        case "daily": dailyChart(el, pr); break;
        case "series": seriesChart(el, dv); break;
      }
    });
  }

  // ---- the live alarm feed ----
  var audioCtx = null;
  function beep() {
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      var o = audioCtx.createOscillator(), g = audioCtx.createGain();
      o.type = "square"; o.frequency.value = 880; g.gain.value = 0.08;
      o.connect(g); g.connect(audioCtx.destination);
      o.start(); o.stop(audioCtx.currentTime + 0.35);
    } catch (e) { /* no audio: the highlight and the announcement remain */ }
  }

  function feedItem(ev) {
    var a = ev.alarm || {};
    var li = document.createElement("li");
    li.className = "alarm new sev-" + (a.severity || "info") + " st-" + (a.state || "");
    li.setAttribute("data-alarm", a.id || "");
    li.setAttribute("data-kind", ev.kind || "");
    var main = document.createElement("div");
    main.className = "alarm-main";
    var sev = document.createElement("span");
    sev.className = "tag sev";
    sev.textContent = t("severity." + a.severity);
    var name = document.createElement("strong");
    name.textContent = a.rule_name || a.rule || "";
    var link = document.createElement("a");
    var subject = a.device || a.gateway || "";
    link.href = "/devices/" + encodeURIComponent(subject);
    link.textContent = subject;
    var meta = document.createElement("span");
    meta.className = "muted";
    meta.textContent = t("kind." + ev.kind) + " · " + new Date(ev.at).toLocaleString(lang);
    main.append(sev, " ", name, " ", link, " ", meta);
    li.appendChild(main);
    return li;
  }

  function initFeed() {
    var list = document.getElementById("feed-live");
    if (!list || !window.EventSource) return;
    var status = document.getElementById("feed-status"), announce = document.getElementById("announce");
    var btn = document.getElementById("notify-enable");
    if (btn) {
      if (!("Notification" in window)) btn.hidden = true;
      btn.addEventListener("click", function () {
        beep(); // a user gesture lets the page play sound later
        if ("Notification" in window) Notification.requestPermission().then(function (p) {
          btn.textContent = p === "granted" ? t("alerts_on") : t("alerts_denied");
        });
      });
    }
    var es = new EventSource("/api/v1/alarms/stream");
    es.addEventListener("open", function () { status.className = "state online"; status.textContent = t("feed_live"); });
    es.addEventListener("error", function () {
      status.className = "state stale"; status.textContent = t("feed_reconnecting");
      fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { es.close(); status.className = "state offline"; sessionExpired(); }
      }).catch(function () {});
    });
    es.addEventListener("alarm", function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      var li = feedItem(ev);
      list.insertBefore(li, list.firstChild);
      while (list.children.length > 200) list.removeChild(list.lastChild);
      var a = ev.alarm || {};
      if (a.severity === "critical" && ev.kind === "raise") {
        li.classList.add("flash");
        var text = t("critical") + ": " + (a.rule_name || "") + " · " + (a.device || a.gateway || "");
        announce.textContent = text;
        beep();
        if ("Notification" in window && Notification.permission === "granted") {
          try { new Notification(text, { tag: a.id, requireInteraction: true }); } catch (e) {}
        }
      }
    });
  }

  // Countdowns to SLA due times ([data-due], RFC 3339): ticked every 15 s
  // with the page's own texts ("剩余 %d 小时 %d 分").
  function fmt(s) {
    var args = Array.prototype.slice.call(arguments, 1);
    return s.replace(/%d/g, function () { return String(args.shift()); });
  }
  function tick() {
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var left = Math.trunc((due - Date.now()) / 60000), late = left < 0;
      if (late) left = -left;
      el.textContent = fmt(t(late ? "overdue_by" : "due_in"), Math.floor(left / 60), left % 60);
      if (el.parentNode && el.parentNode.classList.contains("due")) el.parentNode.classList.toggle("late", late);
    });
  }
  function initCountdowns() {
    if (!document.querySelector("[data-due]")) return;
    tick();
    setInterval(tick, 15000);
  }

  // "My work orders" live: a work-order event on the staff feed (a new
  // assignment, a step, a cancellation) reloads the list in the background
  // and merges it: new orders appear, gone ones go, and a card whose note
  // field is in use is left as it is.
  function initMine() {
    var list = document.getElementById("my-orders");
    if (!list || !window.EventSource || !window.DOMParser) return;
    var live = document.getElementById("my-live"), announce = document.getElementById("my-announce");
    var pending = null;
    function busy(li) {
      var ta = li.querySelector("textarea");
      return ta && (ta.value !== "" || document.activeElement === ta);
    }
    function refresh() {
      pending = null;
      fetch(list.getAttribute("data-live"), { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { sessionExpired(); throw new Error("signed out"); }
        return r.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("my-orders");
        if (!fresh) return;
        var have = {};
        list.querySelectorAll("li[data-order]").forEach(function (li) { have[li.getAttribute("data-order")] = li; });
        var added = 0;
        Array.prototype.slice.call(fresh.children).forEach(function (li) {
          var id = li.getAttribute("data-order"), old = have[id];
          delete have[id];
          var node = old && busy(old) ? old : document.importNode(li, true);
          if (!old) { node.classList.add("flash"); added++; }
          list.appendChild(node);
          if (old && node !== old) list.removeChild(old);
        });
        Object.keys(have).forEach(function (id) { list.removeChild(have[id]); });
        ["my-count", "my-empty"].forEach(function (id) {
          var a = document.getElementById(id), b = doc.getElementById(id);
          if (a && b) { a.textContent = b.textContent; a.hidden = b.hidden; }
        });
        if (added) announce.textContent = t("new_assignment");
        tick();
      }).catch(function () {});
    }
    var es = new EventSource("/api/v1/alarms/stream");
    es.addEventListener("open", function () { live.className = "state online"; live.textContent = t("feed_live"); });
    es.addEventListener("error", function () {
      live.className = "state stale"; live.textContent = t("feed_reconnecting");
      fetch("/api/v1/me", { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) { es.close(); live.className = "state offline"; sessionExpired(); }
      }).catch(function () {});
    });
    es.addEventListener("workorder", function () {
      if (!pending) pending = setTimeout(refresh, 300);
    });
  }

  document.body.addEventListener("htmx:responseError", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 401) sessionExpired();
  });
  document.body.addEventListener("htmx:sendError", function () {
    var b = document.getElementById("offline-banner"); if (b) b.hidden = false;
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    var b = document.getElementById("offline-banner"); if (b) b.hidden = true;
  });

  initCharts();
  initFeed();
  initCountdowns();
  initMine();
  // The label sheet's print button.
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
})();
