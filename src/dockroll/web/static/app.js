// dockroll dashboard: controls with a bearer token, and a rollout's live timeline.
"use strict";

(function () {
  const announce = (text) => { const el = document.getElementById("announce"); if (el) el.textContent = text; };

  // -- controls ---------------------------------------------------------------
  const tokenInput = document.getElementById("token");
  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("dockroll-token") || "";
    tokenInput.addEventListener("change", () => sessionStorage.setItem("dockroll-token", tokenInput.value.trim()));
  }

  async function followJob(id, label) {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const response = await fetch(`/api/jobs/${id}`);
      const job = await response.json();
      if (job.state !== "running") {
        announce(`${label}: ${job.state}${job.message ? " — " + job.message : ""}`
          + (job.result && job.result.status ? ` (${job.result.status})` : ""));
        return;
      }
    }
  }

  async function control(button) {
    const action = button.dataset.action, env = button.dataset.env;
    const body = {};
    if (action === "approve") {
      const input = document.getElementById(`approve-${env}`);
      body.release = input ? input.value.trim() : "";
    }
    const token = tokenInput ? tokenInput.value.trim() : "";
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    button.disabled = true;
    try {
      const response = await fetch(`/api/environments/${encodeURIComponent(env)}/${action}`, {
        method: "POST", headers, body: JSON.stringify(body),
      });
      const data = await response.json();
      const label = `${action} ${env}`;
      if (response.status === 202) {
        announce(`${label}: started`);
        followJob(data.id, label);
      } else if (response.ok) {
        announce(`${label}: done`);
      } else {
        announce(`${label} refused (${response.status}): ${data.error}${data.hint ? " — " + data.hint : ""}`);
      }
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) { event.preventDefault(); control(button); }
  });

  // -- timeline ---------------------------------------------------------------
  const timeline = document.getElementById("timeline");
  if (!timeline) return;
  const initial = JSON.parse(document.getElementById("initial").textContent);
  const samples = initial.samples.slice();
  const limits = initial.thresholds || {};
  const id = timeline.dataset.deployment;
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // series: [{values: [[t, v]...], cls}], threshold: number|null
  function chart(container, series, threshold, fmt) {
    const W = 800, H = 160, L = 50, B = 20, T = 8, R = 8;
    const points = series.flatMap((s) => s.values);
    const tMax = Math.max(1, ...samples.map((s) => s.t));
    let vMax = Math.max(threshold || 0, ...points.map((p) => p[1]));
    if (!(vMax > 0)) vMax = 1;
    vMax *= 1.1;
    const x = (t) => L + (t / tMax) * (W - L - R);
    const y = (v) => H - B - (v / vMax) * (H - B - T);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
    root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#d0d7de" }));
    root.appendChild(svg("text", { x: 2, y: T + 8, "font-size": 10 }, fmt(vMax)));
    root.appendChild(svg("text", { x: 2, y: H - B, "font-size": 10 }, fmt(0)));
    root.appendChild(svg("text", { x: W - R - 40, y: H - 4, "font-size": 10 }, `${tMax.toFixed(0)} s`));
    for (const s of samples) {
      if (s.action === "continue") continue;
      const line = svg("line", { x1: x(s.t), x2: x(s.t), y1: T, y2: H - B, class: `mark ${s.action}` });
      line.appendChild(svg("title", {}, `${s.action} at ${s.t}s: ${s.reason}`));
      root.appendChild(line);
    }
    if (threshold !== null && threshold !== undefined) {
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(threshold), y2: y(threshold), stroke: "#cf222e",
        "stroke-dasharray": "6 4", class: "threshold" }));
    }
    for (const s of series) {
      if (!s.values.length) continue;
      root.appendChild(svg("polyline", { fill: "none", "stroke-width": 2, class: s.cls,
        points: s.values.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }));
    }
    container.replaceChildren(root);
  }

  const pick = (key) => samples.filter((s) => s[key] !== null && s[key] !== undefined).map((s) => [s.t, s[key]]);
  const pct = (v) => `${(v * 100).toFixed(1)}%`;

  function row(s) {
    const tr = document.createElement("tr");
    tr.dataset.sample = s.id;
    tr.dataset.action = s.action;
    const cell = (text) => { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); };
    const group = (req, rate, ms) => req === null ? "—"
      : `${req} / ${rate === null ? "—" : pct(rate)} / ${ms === null ? "—" : ms.toFixed(1)}`;
    cell(s.t.toFixed(1));
    cell(String(s.step));
    cell(s.canary_share === null ? "—" : pct(s.canary_share));
    cell(group(s.canary_requests, s.canary_error_rate, s.canary_latency_ms));
    cell(group(s.baseline_requests, s.baseline_error_rate, s.baseline_latency_ms));
    cell(`${s.action}: ${s.reason}`);
    return tr;
  }

  function draw() {
    chart(document.getElementById("chart-share"), [{ values: pick("canary_share").map(([t, v]) => [t, v * 100]), cls: "canary" }], null, (v) => `${v.toFixed(0)}%`);
    chart(document.getElementById("chart-errors"), [
      { values: pick("canary_error_rate"), cls: "canary" }, { values: pick("baseline_error_rate"), cls: "baseline" },
    ], limits.max_error_rate, pct);
    chart(document.getElementById("chart-latency"), [
      { values: pick("canary_latency_ms"), cls: "canary" }, { values: pick("baseline_latency_ms"), cls: "baseline" },
    ], limits.max_latency_ms, (v) => `${v.toFixed(0)} ms`);
    const decided = samples.filter((s) => s.action !== "continue").pop();
    const box = document.getElementById("decision");
    if (decided) {
      box.className = `decision ${decided.action}`;
      box.textContent = `${decided.action} at ${decided.t.toFixed(1)} s (step ${decided.step}): ${decided.reason}`;
    }
  }

  const tbody = document.getElementById("samples");
  for (const s of samples) tbody.appendChild(row(s));
  draw();

  function showDeployment(d) {
    const status = document.getElementById("status");
    status.textContent = d.status;
    status.dataset.status = d.status;
    document.getElementById("message").textContent = d.message || "";
    const steps = document.getElementById("steps");
    steps.replaceChildren(...d.steps.map((s) => {
      const li = document.createElement("li");
      li.dataset.status = s.status;
      li.textContent = `${s.index}. ${s.kind}: ${s.status}` + (s.weights ? ` ${JSON.stringify(s.weights)}` : "")
        + (s.error ? ` — ${s.error}` : "") + (s.evidence ? ` — ${s.evidence}` : "");
      return li;
    }));
  }

  if (initial.finished) return;
  const last = samples.length ? samples[samples.length - 1].id : "";
  const source = new EventSource(`/api/deployments/${id}/events?after=${last}`);
  source.addEventListener("sample", (event) => {
    const s = JSON.parse(event.data);
    if (samples.some((known) => known.id === s.id)) return;
    samples.push(s);
    tbody.appendChild(row(s));
    draw();
  });
  source.addEventListener("deployment", (event) => showDeployment(JSON.parse(event.data)));
  source.addEventListener("end", () => source.close());
})();
