// Agent Hive dashboard: the state from the API, then every change from /ws/events/ (each event is
// also dispatched on `document` as a `hive:event` DOM event, for charts.js).
//
// Order of things, so nothing is missed: open the stream, learn its `head` (newest event id) from
// the welcome message, load pools, agents and tasks from the API, then apply the events that
// arrived meanwhile. After a dropped connection, reconnect with `last_event_id` and the server
// replays what was missed.
(() => {
  "use strict";

  const MAX_TASKS = 100;
  const MAX_LINES = 200;
  const MAX_EVENTS = 100;
  const TERMINAL = new Set(["succeeded", "failed", "cancelled", "dead"]);
  const STATUSES = new Set(["pending", "queued", "running", ...TERMINAL]);
  const MAX_SESSIONS = 6;
  const STEP_TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const SESSION_END = new Set(["succeeded", "failed", "cancelled", "timed_out", "no_consensus"]);
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    pools: new Map(),
    agents: new Map(),
    tasks: new Map(), // id -> task (API fields plus `output` lines)
    sessions: new Map(), // id -> session detail from the API, kept current by session.* and task.* events
    stepOfTask: new Map(), // task id -> [session id, step name]
    lastEventId: 0,
    ready: false, // the API snapshot is loaded
    early: [], // events that arrived before it
    compression: null,
    retry: 0,
  };

  const $ = (selector) => document.querySelector(selector);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  // shared with the dashboard's other panels (spend.js, charts.js load after this file)
  window.hiveDom = { $, el };

  function problem(message) {
    const box = $("#problem");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function setConnection(status, text) {
    const badge = $("#connection");
    badge.className = `connection ${status}`;
    badge.textContent = text;
  }

  // --- the API -------------------------------------------------------------------------------
  async function api(path) {
    const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 || response.status === 403) {
      window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  async function loadPools() {
    const pools = await api("/api/v1/pools/");
    state.pools = new Map(pools.map((pool) => [pool.name, pool]));
    renderPools();
  }

  async function loadAgents() {
    const agents = await api("/api/v1/agents/");
    state.agents = new Map(agents.map((agent) => [agent.name, agent]));
    renderAgents();
  }

  async function loadTasks() {
    const page = await api("/api/v1/tasks/?limit=50");
    for (const task of page.results.slice().reverse()) {
      const known = state.tasks.get(task.id);
      state.tasks.set(task.id, { ...task, output: known ? known.output : [] });
    }
    renderTasks();
  }

  // ETAs (the task list's `eta`, from the duration model): fetched again a few seconds after task
  // events and every ETA_REFRESH_MS while a task is queued or running, as they count down and a new
  // model version becomes active.
  const ETA_REFRESH_MS = 10000;
  let etaTimer = null;
  function refreshEtasSoon(delay = 3000) {
    if (etaTimer) return;
    etaTimer = setTimeout(async () => {
      etaTimer = null;
      try {
        await loadEtas();
      } catch (err) {
        problem(`could not refresh ETAs: ${err.message}`);
      }
    }, delay);
  }

  async function loadEtas() {
    if (![...state.tasks.values()].some((task) => task.status === "queued" || task.status === "running")) return;
    const page = await api("/api/v1/tasks/?limit=50");
    for (const fresh of page.results) {
      const task = state.tasks.get(fresh.id);
      if (!task || JSON.stringify(task.eta) === JSON.stringify(fresh.eta)) continue;
      task.eta = fresh.eta;
      renderTask(task);
    }
  }

  // Pool counts and agent load change with every task: refresh them, at most once a second.
  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      try {
        await Promise.all([loadPools(), loadAgents()]);
      } catch (err) {
        problem(`could not refresh pools and agents: ${err.message}`);
      }
    }, 1000);
  }

  // --- events ----------------------------------------------------------------------------------
  function taskOf(event) {
    let task = state.tasks.get(event.task);
    if (!task) {
      task = { id: event.task, status: "pending", prompt: "", command: null, pool: event.pool, agent: null,
               priority: null, created_at: event.at, output: [], error: "" };
      state.tasks.set(event.task, task);
    }
    return task;
  }

  function apply(event) {
    if (event.id > state.lastEventId) state.lastEventId = event.id;
    logEvent(event);
    // charts.js follows the stream through these (pool.scaled and task events redraw the charts, alerts the panel)
    document.dispatchEvent(new CustomEvent("hive:event", { detail: event }));
    const payload = event.payload || {};
    if (event.type.startsWith("session.") || (event.task && state.stepOfTask.has(event.task))) applyToSession(event);
    if (event.task && event.type.startsWith("task.")) {
      const task = taskOf(event);
      const verb = event.type.slice("task.".length);
      if (event.pool) task.pool = event.pool;
      if (event.type === "task.queued") {
        task.status = "queued";
        task.title = payload.title || task.title;
        task.priority = payload.priority || task.priority;
      } else if (event.type === "task.running") {
        task.status = "running";
        task.agent = event.agent;
        task.error = "";
        task.hold_reason = "";
      } else if (event.type === "task.held") {
        task.hold_reason = payload.detail || "held";
      } else if (event.type === "task.released") {
        task.hold_reason = "";
      } else if (event.type === "task.progress") {
        task.output.push(...(payload.lines || []));
        if (task.output.length > MAX_LINES) task.output.splice(0, task.output.length - MAX_LINES);
      } else if (event.type === "task.retrying") {
        task.status = "queued";
        task.error = `attempt ${payload.attempt} failed, retrying: ${payload.error || ""}`;
      } else if (event.type === "task.retried" || event.type === "task.redriven") {
        task.status = "queued";
        task.error = "";
      } else if (STATUSES.has(verb)) {
        task.status = verb;
        if (payload.error) task.error = payload.error;
        if (verb === "succeeded" && !task.output.length && payload.output_tail) {
          task.output = payload.output_tail.split("\n").filter((line) => line !== "");
        }
      }
      task.updated = event.id;
      renderTask(task);
      refreshSoon();
      refreshEtasSoon();
    }
    if (event.type.startsWith("agent.") || event.type.startsWith("pool.")) {
      if (event.agent && state.agents.has(event.agent)) {
        const status = event.type.slice("agent.".length);
        if (["online", "offline", "draining"].includes(status)) state.agents.get(event.agent).status = status;
        renderAgents();
      }
      refreshSoon();
    }
    $("#last-event").textContent = `last #${state.lastEventId}`;
  }

  function receive(events) {
    if (!state.ready) {
      state.early.push(...events);
      return;
    }
    for (const event of events) apply(event);
    trimTasks();
  }

  // --- the stream --------------------------------------------------------------------------------
  const DECOMPRESS = { gzip: "gzip", zlib: "deflate", deflate: "deflate-raw" };

  async function decode(data) {
    if (typeof data === "string") return JSON.parse(data);
    const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream(DECOMPRESS[state.compression]));
    return JSON.parse(await new Response(stream).text());
  }

  function connect() {
    const params = new URLSearchParams({ flush_interval: "0.25" });
    const compress = new URLSearchParams(window.location.search).get("compress");
    if (compress) params.set("compress", compress);
    if (state.ready) params.set("last_event_id", String(state.lastEventId));
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/events/?${params}`, ["hive.v1"]);
    socket.binaryType = "arraybuffer";
    let queue = Promise.resolve(); // frames are handled one after another, in order

    socket.addEventListener("message", (frame) => {
      queue = queue.then(async () => handle(await decode(frame.data))).catch((err) => problem(err.message));
    });
    socket.addEventListener("close", (closed) => {
      if (closed.code === 4401 || closed.code === 4403) {
        setConnection("closed", "signed out");
        window.location.assign(`/login/?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** state.retry++) * (0.5 + Math.random() / 2);
      setConnection("closed", `disconnected${closed.reason ? ` (${closed.reason})` : ""}, retrying…`);
      setTimeout(connect, delay);
    });
  }

  async function handle(message) {
    switch (message.type) {
      case "welcome":
        state.retry = 0;
        state.compression = message.compression;
        setConnection("live", "live");
        if (!state.ready) await loadSnapshot(message.head);
        else refreshSoon();
        break;
      case "batch":
        receive(message.events);
        break;
      case "heartbeat":
        if (message.last_event_id > state.lastEventId) state.lastEventId = message.last_event_id;
        break;
      case "error":
        problem(`stream: ${message.detail}`);
        break;
      default:
        break;
    }
  }

  async function loadSnapshot(head) {
    try {
      await Promise.all([loadPools(), loadAgents(), loadTasks(), loadSessions()]);
      problem("");
    } catch (err) {
      problem(`could not load the current state: ${err.message}`);
    }
    state.lastEventId = Math.max(state.lastEventId, head || 0);
    state.ready = true;
    const early = state.early.splice(0);
    for (const event of early) apply(event); // the API's state may include them: applying is idempotent
    trimTasks();
  }

  // --- sessions: a DAG per session, drawn from the API's nodes and edges, moved on by events ----------
  async function loadSessions() {
    const page = await api(`/api/v1/sessions/?limit=${MAX_SESSIONS}`);
    await Promise.all(page.results.map((session) => loadSession(session.id)));
    renderSessions();
  }

  const loading = new Map(); // session id -> the pending request, so a burst of events fetches once
  function loadSession(id) {
    if (!loading.has(id)) {
      loading.set(id, api(`/api/v1/sessions/${encodeURIComponent(id)}/`).then((detail) => {
        const known = state.sessions.get(id);
        // Events newer than the snapshot may already have moved a step on: keep the later state.
        if (known) {
          for (const node of detail.graph.nodes) {
            const seen = known.graph.nodes.find((n) => n.id === node.id);
            if (seen && STEP_TERMINAL.has(seen.status) && !STEP_TERMINAL.has(node.status)) node.status = seen.status;
          }
          if (SESSION_END.has(known.status) && !SESSION_END.has(detail.status)) detail.status = known.status;
        }
        state.sessions.set(id, detail);
        for (const node of detail.graph.nodes) if (node.task) state.stepOfTask.set(node.task, [id, node.id]);
        return detail;
      }).finally(() => loading.delete(id)));
    }
    return loading.get(id);
  }

  function applyToSession(event) {
    const payload = event.payload || {};
    let id = payload.session;
    let stepName = payload.step;
    if (!id && event.task && state.stepOfTask.has(event.task)) [id, stepName] = state.stepOfTask.get(event.task);
    if (!id) return;
    const session = state.sessions.get(id);
    if (!session) { // a session this page has not seen yet: fetch it, with its DAG
      loadSession(id).then(() => { trimSessions(); renderSessions(); }).catch((err) => problem(err.message));
      return;
    }
    const node = stepName ? session.graph.nodes.find((n) => n.id === stepName) : null;
    if (event.type === "session.step_queued" && node) {
      if (!STEP_TERMINAL.has(node.status) && node.status !== "running") node.status = "queued";
      node.task = event.task;
      state.stepOfTask.set(event.task, [id, node.id]);
    } else if (event.type === "session.step_finished" && node) {
      node.status = payload.status;
    } else if (event.type === "task.running" && node && !STEP_TERMINAL.has(node.status)) {
      node.status = "running";
    } else if (event.type === "session.decided") {
      session.decision = { answer: payload.answer, share: payload.share, tally: payload.tally };
    } else if (event.type === `session.${payload.status}` && SESSION_END.has(payload.status)) {
      session.status = payload.status;
      session.reason = payload.reason || "";
    }
    renderSession(session);
  }

  function trimSessions() {
    const byAge = [...state.sessions.values()].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    while (byAge.length > MAX_SESSIONS) {
      const old = byAge.shift();
      state.sessions.delete(old.id);
      for (const node of old.graph.nodes) if (node.task) state.stepOfTask.delete(node.task);
    }
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) if (value !== null && value !== undefined) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  // Columns by longest path from a step without dependencies; rows in plan order within a column.
  function layout(graph) {
    const deps = new Map(graph.nodes.map((n) => [n.id, []]));
    for (const edge of graph.edges) if (deps.has(edge.target)) deps.get(edge.target).push(edge.source);
    const depth = new Map();
    const depthOf = (id, seen = new Set()) => {
      if (depth.has(id)) return depth.get(id);
      if (seen.has(id)) return 0; // a cycle never reaches here (refused at creation); stay finite anyway
      seen.add(id);
      const d = Math.max(-1, ...deps.get(id).map((dep) => depthOf(dep, seen))) + 1;
      depth.set(id, d);
      return d;
    };
    const rows = new Map();
    const place = new Map();
    for (const node of graph.nodes) {
      const column = depthOf(node.id);
      const row = rows.get(column) || 0;
      rows.set(column, row + 1);
      place.set(node.id, { x: 10 + column * 170, y: 10 + row * 56 });
    }
    const width = 20 + Math.max(1, ...[...rows.keys()].map((c) => c + 1)) * 170 - 30;
    const height = 20 + Math.max(1, ...rows.values()) * 56 - 12;
    return { place, width, height };
  }

  function dagNode(session) {
    const { place, width, height } = layout(session.graph);
    const marker = `arrow-${session.id}`;
    const drawing = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
                                 "aria-label": `steps of session ${session.name}` },
      svg("defs", {}, svg("marker", { id: marker, viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7",
                                      markerHeight: "7", orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa3ae" }))));
    for (const edge of session.graph.edges) {
      const a = place.get(edge.source);
      const b = place.get(edge.target);
      if (!a || !b) continue;
      const [x1, y1, x2, y2] = [a.x + 140, a.y + 22, b.x, b.y + 22];
      drawing.append(svg("path", { class: "edge", "marker-end": `url(#${marker})`,
                                   d: `M${x1},${y1} C${x1 + 15},${y1} ${x2 - 15},${y2} ${x2},${y2}`,
                                   "data-source": edge.source, "data-target": edge.target }));
    }
    for (const node of session.graph.nodes) {
      const at = place.get(node.id);
      drawing.append(svg("g", { class: `node step-${node.status}`, "data-step": node.id, "data-status": node.status,
                                transform: `translate(${at.x},${at.y})` },
        svg("title", {}, `${node.id}: ${node.status}${node.task ? ` (task ${node.task.slice(0, 8)})` : ""}`),
        svg("rect", { width: "140", height: "44", rx: "6" }),
        svg("text", { x: "10", y: "18" }, node.id.length > 20 ? `${node.id.slice(0, 19)}…` : node.id),
        svg("text", { x: "10", y: "34", class: "state" }, node.status)));
    }
    return drawing;
  }

  function decisionText(session) {
    const d = session.decision;
    if (!d || !d.tally) return null;
    const tally = Object.entries(d.tally).map(([answer, n]) => `${answer} ${n}`).join(", ") || "no answers";
    return el("p", { class: "decision" }, `decision: ${d.answer === null ? "none" : `“${d.answer}”`} — share ${d.share}, tally ${tally}`);
  }

  function sessionNode(session) {
    return el("article", { class: `session status-${session.status}`, dataset: { sessionId: session.id, status: session.status } },
      el("header", {},
        el("span", { class: "status" }, session.status),
        el("code", { class: "id", title: session.id }, session.id.slice(0, 8)),
        el("span", { class: "title" }, session.name),
        el("span", { class: "mode" }, session.mode)),
      session.reason ? el("p", { class: "reason" }, session.reason) : null,
      decisionText(session),
      dagNode(session));
  }

  function renderSession(session) {
    if (!state.ready) return;
    const node = sessionNode(session);
    const old = $(`#sessions [data-session-id="${CSS.escape(session.id)}"]`);
    if (old) old.replaceWith(node);
    else $("#sessions").prepend(node);
    $("#session-count").textContent = `${state.sessions.size} shown`;
  }

  function renderSessions() {
    const sessions = [...state.sessions.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    $("#sessions").replaceChildren(...sessions.map(sessionNode));
    $("#session-count").textContent = `${state.sessions.size} shown`;
  }

  // --- rendering ---------------------------------------------------------------------------------
  function renderPools() {
    const body = $("#pools tbody");
    body.replaceChildren(
      ...[...state.pools.values()].map((pool) =>
        el("tr", { dataset: { pool: pool.name } },
          el("td", { class: "name" }, pool.name, pool.program_missing ? el("span", { class: "warn", title: pool.program_missing }, " ⚠") : null),
          el("td", { class: "instances" }, `${pool.agents_online} / ${pool.max_instances}`),
          el("td", { class: "queued" }, pool.queued),
          el("td", { class: "depth" }, pool.queue_depth ?? "–"),
          el("td", { class: "running" }, pool.running),
          el("td", { class: "capabilities" }, (pool.capabilities || []).join(", ")))),
    );
  }

  function renderAgents() {
    const body = $("#agents tbody");
    const agents = [...state.agents.values()].sort((a, b) =>
      (a.status === "offline") - (b.status === "offline") || a.name.localeCompare(b.name));
    body.replaceChildren(
      ...agents.map((agent) =>
        el("tr", { class: `agent agent-${agent.status}`, dataset: { agent: agent.name } },
          el("td", { class: "name" }, agent.name),
          el("td", {}, agent.pool),
          el("td", { class: "status" }, agent.status),
          el("td", { class: "load" },
            el("meter", { min: "0", max: String(agent.concurrency || 1), value: String(agent.load || 0) }),
            ` ${agent.load || 0} / ${agent.concurrency || 1}`),
          el("td", {}, agent.host || ""),
          el("td", {}, agent.last_heartbeat ? new Date(agent.last_heartbeat).toLocaleTimeString() : ""))),
    );
  }

  function taskTitle(task) {
    if (task.title) return task.title;
    if (task.command && task.command.length) return task.command.join(" ");
    return task.prompt || "(no prompt)";
  }

  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }

  function etaNode(task) {
    const eta = task.eta;
    if (!eta || (task.status !== "queued" && task.status !== "running")) return null;
    if (eta.seconds === null) {
      const text = eta.reason.startsWith("no active duration model") ? "ETA: no model yet" : "ETA: unknown";
      return el("span", { class: "eta", title: eta.reason }, text);
    }
    const at = new Date(eta.at).toLocaleTimeString();
    return el("span", { class: "eta", title: `about ${at}; p90 ${span(eta.p90_seconds)} (${eta.model_version})` },
      `ETA ${span(eta.seconds)}`);
  }

  function taskNode(task) {
    const output = el("pre", { class: "output" }, task.output.join("\n"));
    output.hidden = !task.output.length;
    return el("article", { class: `task status-${task.status}`, dataset: { taskId: task.id, status: task.status } },
      el("header", {},
        el("span", { class: "status" }, task.status),
        el("code", { class: "id", title: task.id }, task.id.slice(0, 8)),
        el("span", { class: "title" }, taskTitle(task)),
        el("span", { class: "where" }, [task.pool, task.agent].filter(Boolean).join(" · ")),
        etaNode(task),
        task.priority && task.priority !== "normal" ? el("span", { class: `priority priority-${task.priority}` }, task.priority) : null),
      task.error ? el("p", { class: "error" }, task.error) : null,
      task.hold_reason && task.status === "queued" ? el("p", { class: "held" }, task.hold_reason) : null,
      output);
  }

  function renderTask(task) {
    if (!state.ready) return;
    const container = $("#tasks");
    const node = taskNode(task);
    const old = container.querySelector(`[data-task-id="${CSS.escape(task.id)}"]`);
    if (old) {
      const pre = old.querySelector("pre.output");
      old.replaceWith(node);
      if (pre && pre.scrollTop) node.querySelector("pre.output").scrollTop = pre.scrollTop;
    } else {
      container.prepend(node);
    }
    $("#task-count").textContent = `${state.tasks.size} shown`;
  }

  function renderTasks() {
    const tasks = [...state.tasks.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    $("#tasks").replaceChildren(...tasks.map(taskNode));
    $("#task-count").textContent = `${state.tasks.size} shown`;
  }

  function trimTasks() {
    if (state.tasks.size <= MAX_TASKS) return;
    const byAge = [...state.tasks.values()].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    for (const task of byAge) {
      if (state.tasks.size <= MAX_TASKS) break;
      if (!TERMINAL.has(task.status)) continue;
      state.tasks.delete(task.id);
      const node = $(`#tasks [data-task-id="${CSS.escape(task.id)}"]`);
      if (node) node.remove();
    }
  }

  function logEvent(event) {
    const list = $("#events");
    const what = [event.task && event.task.slice(0, 8), event.agent, event.pool].filter(Boolean).join(" ");
    list.prepend(el("li", { dataset: { eventId: event.id } },
      el("code", {}, `#${event.id}`), " ", el("span", { class: "type" }, event.type), " ", what,
      el("time", { datetime: event.at }, ` ${new Date(event.at).toLocaleTimeString()}`)));
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
  }

  document.addEventListener("DOMContentLoaded", connect);
  setInterval(() => refreshEtasSoon(0), ETA_REFRESH_MS);
})();
