// spyder's dashboard: reads GET /api/v1/events (server-sent events, the hub's
// one-second snapshots, history first) with fetch() and a streaming reader, since
// EventSource cannot send an Authorization header. The key lives in `apiKey` only:
// never in a URL, a cookie or storage.
"use strict";

(function () {
  // Points kept for the charts: memory stays flat however long the page is open.
  const MAX_POINTS = 600;
  // Largest SSE buffer accepted before a frame ends (a snapshot is a few KiB).
  const MAX_FRAME = 4 * 1024 * 1024;

  let apiKey = null;
  let abort = null;
  let retryTimer = null;
  let retryDelay = 1000;
  let lastSeq = 0;
  // {t (ms), tasks, edges} per snapshot, oldest first.
  let points = [];
  let latest = null;
  let drawPending = false;
  let configLoaded = false;
  // The key's scope as the event stream names it: "read", "write" or "admin".
  let scope = "read";
  // Domains shown under "Latest discoveries".
  const MAX_DISCOVERIES = 20;

  const $ = (id) => document.getElementById(id);

  function setText(id, value) {
    const el = $(id);
    if (el) el.textContent = value === undefined || value === null ? "–" : String(value);
  }

  function fmt(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    if (Math.abs(n) >= 100 || Number.isInteger(n)) return Math.round(n).toLocaleString();
    return n.toFixed(1);
  }

  function duration(seconds) {
    if (typeof seconds !== "number") return "–";
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = Math.floor(seconds % 60);
    return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
  }

  function sum(obj) {
    let total = 0;
    if (obj && typeof obj === "object") {
      for (const v of Object.values(obj)) if (typeof v === "number") total += v;
    }
    return total;
  }

  // ------------------------------------------------------------------ API calls

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + apiKey };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch("/api/v1/" + path, init);
    let json = null;
    try {
      json = await response.json();
    } catch (_) {
      json = null;
    }
    return { status: response.status, ok: response.ok, json };
  }

  function describeError(result) {
    const code = result.json && result.json.code ? result.json.code : "HTTP " + result.status;
    const message = result.json && result.json.error ? result.json.error : "";
    return result.status + " " + code + (message ? ": " + message : "");
  }

  // ------------------------------------------------------------------ the stream

  function connect() {
    clearTimeout(retryTimer);
    if (abort) abort.abort();
    abort = new AbortController();
    const signal = abort.signal;
    setText("connection", "connecting…");
    stream(signal).then(
      () => reconnectLater(signal, "stream ended"),
      (err) => {
        if (err && err.name === "AbortError") return;
        reconnectLater(signal, err && err.message ? err.message : String(err));
      },
    );
  }

  function reconnectLater(signal, why) {
    if (signal.aborted || apiKey === null) return;
    setText("connection", "disconnected (" + why + "); retrying");
    setBadge("none", "not connected", "");
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }

  async function stream(signal) {
    const response = await fetch("/api/v1/events", {
      headers: { Authorization: "Bearer " + apiKey, Accept: "text/event-stream" },
      cache: "no-store",
      credentials: "omit",
      signal,
    });
    if (!response.ok) {
      let json = null;
      try {
        json = await response.json();
      } catch (_) {
        json = null;
      }
      const text = describeError({ status: response.status, json });
      if (response.status === 401 || response.status === 403) {
        // A wrong key: back to the prompt, no data shown.
        forget(text);
        throw Object.assign(new Error(text), { name: "AbortError" });
      }
      throw new Error(text);
    }
    scope = response.headers.get("x-spyder-key-scope") || "read";
    showControls();
    showMain();
    if (!configLoaded && scope !== "read") loadConfig();
    setText("connection", "live");
    retryDelay = 1000;
    // A new connection sends the whole history again.
    points = [];
    lastSeq = 0;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        handleFrame(frame);
      }
      if (buffer.length > MAX_FRAME) throw new Error("event too large");
    }
  }

  function handleFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event !== "snapshot" || data.length === 0) return;
    let snapshot;
    try {
      snapshot = JSON.parse(data.join("\n"));
    } catch (_) {
      return;
    }
    addSnapshot(snapshot);
  }

  function addSnapshot(snapshot) {
    if (typeof snapshot.seq === "number") {
      if (snapshot.seq <= lastSeq) return;
      lastSeq = snapshot.seq;
    }
    const stats = snapshot.stats || {};
    const tasks = stats.tasks ? (stats.tasks.ok || 0) + (stats.tasks.error || 0) : 0;
    points.push({
      t: Date.parse(snapshot.timestamp) || Date.now(),
      tasks,
      edges: sum(stats.edges),
    });
    if (points.length > MAX_POINTS + 1) points.splice(0, points.length - MAX_POINTS - 1);
    latest = snapshot;
    if (!drawPending) {
      drawPending = true;
      requestAnimationFrame(render);
    }
  }

  // ------------------------------------------------------------------ rendering

  function rates(key) {
    const out = [];
    for (let i = 1; i < points.length; i++) {
      const dt = (points[i].t - points[i - 1].t) / 1000;
      const dv = points[i][key] - points[i - 1][key];
      out.push(dt > 0 && dv >= 0 ? dv / dt : 0);
    }
    return out;
  }

  function setBadge(state, label, reason) {
    const badge = $("badge");
    badge.className = "badge state-" + state;
    badge.textContent = label;
    setText("reason", reason || "");
  }

  function render() {
    drawPending = false;
    if (!latest) return;
    const snapshot = latest;
    const stats = snapshot.stats || {};
    setBadge(snapshot.state || "none", snapshot.state || "unknown", snapshot.reason);
    setText(
      "identity",
      [stats.probe, stats.run, stats.version && "v" + stats.version].filter(Boolean).join(" · "),
    );
    const taskRates = rates("tasks");
    const edgeRates = rates("edges");
    setText("tasks-rate", fmt(taskRates[taskRates.length - 1]));
    setText("edges-rate", fmt(edgeRates[edgeRates.length - 1]));
    drawChart($("tasks-chart"), taskRates, "#4fa3ff");
    drawChart($("edges-chart"), edgeRates, "#3fb950");

    const tasks = stats.tasks || {};
    setText("tasks-ok", fmt(tasks.ok));
    setText("tasks-error", fmt(tasks.error));
    setText("uptime", duration(stats.uptime_seconds));
    fillTable($("outcomes"), stats.outcomes);
    // Bucket bounds; null past the last bucket (over 60 s).
    const taskMs = stats.task_ms || {};
    for (const p of ["p50", "p90", "p99"]) {
      const v = taskMs[p];
      setText("task-" + p, v === undefined ? "–" : v === null ? "> 60000" : "≤ " + fmt(v));
    }
    const causes = {};
    for (const c of Array.isArray(stats.causes) ? stats.causes : []) {
      causes[c.outcome + ": " + c.reason] = c.count;
    }
    fillTable($("causes"), causes);
    const edges = Object.assign({}, stats.edges || {});
    if (stats.nodes) {
      for (const [k, v] of Object.entries(stats.nodes)) edges[k + " nodes"] = v;
    }
    fillTable($("edges"), edges);

    const workers = stats.workers || {};
    setText("workers-target", fmt(workers.target));
    setText("workers-active", fmt(workers.active));
    const queue = stats.queue || {};
    setText("queue-mode", queue.mode ? "(" + queue.mode + ")" : "");
    setText("queue-pending", fmt(queue.pending));
    setText("queue-processing", fmt(queue.processing));
    setText("queue-dead", fmt(queue.dead));
    setText("queue-held", fmt(queue.held));
    const discovery = stats.discovery || {};
    setText("discovery-enqueued", fmt(discovery.enqueued));
    setText("discovery-dropped", fmt(discovery.dropped));

    const checks = Array.isArray(snapshot.checks) ? snapshot.checks : [];
    $("checks-panel").hidden = checks.length === 0;
    const checkRows = {};
    for (const c of checks) checkRows[c.name] = c.status + (c.message ? ": " + c.message : "");
    fillTable($("checks"), checkRows);

    renderFleet(Array.isArray(stats.fleet) ? stats.fleet : []);
    renderDiscoveries(Array.isArray(stats.recent_discoveries) ? stats.recent_discoveries : []);
  }

  function renderDiscoveries(recent) {
    const items = recent.slice(0, MAX_DISCOVERIES).map((d) => {
      const li = document.createElement("li");
      li.textContent = d && typeof d.host === "string" ? d.host : "?";
      if (d && typeof d.first_seen === "string") li.title = "first seen " + d.first_seen;
      return li;
    });
    $("discoveries").replaceChildren(...items);
  }

  function fillTable(table, obj) {
    const body = table.tBodies[0];
    const rows = [];
    if (obj && typeof obj === "object") {
      for (const [k, v] of Object.entries(obj)) {
        if (typeof v === "number" && v === 0) continue;
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.textContent = k;
        const td = document.createElement("td");
        td.textContent = typeof v === "number" ? fmt(v) : String(v);
        tr.append(th, td);
        rows.push(tr);
      }
    }
    body.replaceChildren(...rows);
  }

  function renderFleet(fleet) {
    $("fleet-panel").hidden = fleet.length === 0;
    const rows = fleet.map((m) => {
      const tr = document.createElement("tr");
      if (m.gone) tr.className = "gone";
      const seen = m.last_seen_ms ? Math.max(0, Math.round((Date.now() - m.last_seen_ms) / 1000)) + " s ago" : "–";
      const cells = [
        m.probe_id,
        m.gone ? "gone" : m.state,
        fmt(m.tasks_per_sec),
        fmt(m.edges_per_sec),
        fmt(m.workers_active) + " / " + fmt(m.workers_target),
        fmt(m.tasks_total),
        m.version,
        seen,
      ];
      for (const c of cells) {
        const td = document.createElement("td");
        td.textContent = c === undefined || c === null ? "–" : String(c);
        tr.append(td);
      }
      const ops = document.createElement("td");
      if (typeof m.ops_addr === "string" && m.ops_addr) {
        const a = document.createElement("a");
        a.href = "http://" + m.ops_addr + "/dashboard";
        a.rel = "noopener noreferrer";
        a.textContent = m.ops_addr;
        ops.append(a);
      } else {
        ops.textContent = "–";
      }
      tr.append(ops);
      return tr;
    });
    $("fleet").tBodies[0].replaceChildren(...rows);
  }

  function drawChart(canvas, values, color) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const pad = 4 * ratio;
    const max = Math.max(1, ...values);
    ctx.strokeStyle = "#2c3540";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, height - pad);
    ctx.lineTo(width, height - pad);
    ctx.stroke();
    ctx.fillStyle = "#8b97a5";
    ctx.font = 11 * ratio + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText("max " + fmt(max) + "/s", pad, pad);
    if (values.length < 2) return;
    const step = (width - 2 * pad) / (MAX_POINTS - 1);
    const x0 = width - pad - (values.length - 1) * step;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * ratio;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = x0 + i * step;
      const y = height - pad - (v / max) * (height - 3 * pad - 11 * ratio);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }

  // ------------------------------------------------------------------ controls

  // A slider's range grows with the value it shows, so the current setting is never
  // at the end of the scale.
  function setSlider(id, value, floor, round) {
    const slider = $(id);
    const top = Math.max(floor, round(value * 2));
    slider.max = String(top);
    slider.value = String(value);
    slider.disabled = false;
    setText(id + "-value", fmt(value));
  }

  async function loadConfig() {
    const result = await api("GET", "config");
    if (!result.ok || !result.json || !result.json.config) return;
    configLoaded = true;
    const crawling = result.json.config.crawling || {};
    if (typeof crawling.concurrency === "number") {
      setSlider("concurrency", crawling.concurrency, 256, (v) => Math.min(65536, Math.ceil(v)));
    }
    if (typeof crawling.rate_per_host === "number") {
      setSlider("rate", crawling.rate_per_host, 10, (v) => Math.min(1e6, Math.ceil(v)));
    }
  }

  // Controls a key may use: write pauses, resumes and changes the sliders; only admin
  // stops. A read key sees none.
  function showControls() {
    $("controls").hidden = scope === "read";
    $("stop").hidden = scope !== "admin";
  }

  async function control(label, method, path, body) {
    const out = $("control-result");
    out.className = "muted";
    out.textContent = label + "…";
    try {
      const result = await api(method, path, body);
      if (result.ok) {
        const message = result.json && result.json.message ? result.json.message : "done";
        const warnings = result.json && Array.isArray(result.json.warnings) ? result.json.warnings : [];
        out.textContent = label + ": " + [message].concat(warnings).join("; ");
      } else {
        out.className = "error";
        out.textContent = label + " refused: " + describeError(result);
      }
    } catch (err) {
      out.className = "error";
      out.textContent = label + " failed: " + (err && err.message ? err.message : err);
    }
  }

  // ------------------------------------------------------------------ login

  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("login-error").hidden = true;
  }

  function forget(error) {
    apiKey = null;
    if (abort) abort.abort();
    abort = null;
    clearTimeout(retryTimer);
    points = [];
    latest = null;
    lastSeq = 0;
    configLoaded = false;
    scope = "read";
    showControls();
    $("main").hidden = true;
    $("login").hidden = false;
    setBadge("none", "not connected", "");
    setText("connection", "");
    setText("identity", "");
    const el = $("login-error");
    el.textContent = error || "";
    el.hidden = !error;
    $("key").value = "";
    $("key").focus();
  }

  function init() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      $("key").value = "";
      if (!key) return;
      apiKey = key;
      connect();
    });
    $("disconnect").addEventListener("click", () => forget(""));
    $("pause").addEventListener("click", () => control("pause", "POST", "control/pause"));
    $("resume").addEventListener("click", () => control("resume", "POST", "control/resume"));
    $("stop").addEventListener("click", () => {
      if (window.confirm("Stop this probe? It shuts down gracefully and does not come back by itself.")) {
        control("stop", "POST", "control/stop");
      }
    });
    $("concurrency").addEventListener("input", () => setText("concurrency-value", $("concurrency").value));
    $("concurrency").addEventListener("change", () => {
      const n = Number($("concurrency").value);
      control("concurrency", "PATCH", "config", { crawling: { concurrency: n } });
    });
    $("rate").addEventListener("input", () => setText("rate-value", $("rate").value));
    $("rate").addEventListener("change", () => {
      const r = Number($("rate").value);
      control("rate_per_host", "PATCH", "config", { crawling: { rate_per_host: r } });
    });
    window.addEventListener("resize", () => {
      if (latest && !drawPending) {
        drawPending = true;
        requestAnimationFrame(render);
      }
    });
    $("key").focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
