// A node's page: what it reports about itself, its cameras with their health
// (from the node's last heartbeat, else its last camera event), a manual
// record button per camera, and the schedules editor with desired vs applied
// revision.

import { ApiError, allItems, api, errorText, mediaUrl } from "./api.js";
import {
  ageBadge, bitrate, bytes, clock, dateTime, duration, h, parseTime, plural, replace, setAge,
} from "./dom.js";
import { lastHeartbeat, subscribe } from "./live.js";
import { editSchedule, scheduleTable } from "./schedules.js";

const REFRESH_MS = 10000;
const RECORD_DEFAULT_S = 30;
const COMMAND_TIMEOUT_S = 10;

function fact(label, value, id) {
  return h("div", { class: "fact" }, h("dt", {}, label), h("dd", { id }, value));
}

function revisionLine(node) {
  const desired = node.schedules_revision_desired;
  const applied = node.schedules_revision_applied;
  let note = "in sync";
  let cls = "good";
  if (applied !== desired) {
    cls = "warn";
    note = node.online ? "waiting for the node to apply it…" : "the node is offline; it applies it when it reconnects";
  }
  return h("p", { class: `revision ${cls}`, id: "schedule-revision", role: "status" },
    "Desired revision ", h("strong", { id: "rev-desired" }, desired),
    " · applied ", h("strong", { id: "rev-applied" }, applied), ` — ${note}`);
}

// What we know of a camera's health: heartbeat figures first, the last
// camera.online/offline event for whatever the heartbeat leaves out.
function health(camera, heartbeat, event) {
  const hb = heartbeat?.cameras?.find((c) => c.camera_id === camera.camera_id) ?? {};
  const ev = event?.data ?? {};
  let state = hb.state ?? (event ? (event.type === "camera.online" ? "online" : "offline") : "unknown");
  if (!camera.enabled) state = "disabled";
  const width = hb.width ?? ev.width;
  const height = hb.height ?? ev.height;
  return {
    state,
    fps: hb.fps ?? ev.fps ?? null,
    resolution: width && height ? `${width}×${height}` : "—",
    codec: hb.codec ?? ev.codec ?? "—",
    bitrate: bitrate(hb.bitrate_bps),
    reconnects: hb.reconnects_1h ?? "—",
    lastSegment: hb.last_segment_at ? dateTime(parseTime(hb.last_segment_at)) : "—",
    error: ev.error ?? null,
  };
}

function recordForm(nodeId, camera) {
  const id = `record-${camera.camera_id}`;
  const input = h("input", { id, name: "duration_s", type: "number", min: 1, max: 14400, value: RECORD_DEFAULT_S, required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Record");
  button.setAttribute("aria-label", `Record ${camera.camera_id} now`);
  const out = h("output", { class: "reply", role: "status", for: id });
  const form = h("form", { class: "record" },
    h("label", { for: id }, "Manual recording (s)"), input, button, out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    button.disabled = true;
    out.className = "reply";
    out.textContent = "Sending to the node…";
    try {
      const reply = await api("/api/commands", { method: "POST", body: {
        node_id: nodeId, command: "record", camera_id: camera.camera_id,
        duration_s: Number(input.value), timeout_s: COMMAND_TIMEOUT_S,
      } });
      if (reply.ok) {
        const until = parseTime(reply.result?.until);
        out.textContent = `Accepted: recording${until ? ` until ${clock(until)}` : ""}.`;
        out.className = "reply good";
      } else {
        out.textContent = `Refused: ${reply.error}`;
        out.className = "reply bad";
      }
    } catch (err) {
      out.textContent = err instanceof ApiError && err.status === 504
        ? `No reply from the node within ${COMMAND_TIMEOUT_S} s.`
        : `Not sent: ${errorText(err)}`;
      out.className = "reply bad";
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The newest uploaded segment of the camera, shown paused on its first frame.
// Resolves true once there is something to show (or nothing ever will be).
async function loadPreview(figure, camera, codecOf) {
  const caption = figure.querySelector("figcaption");
  try {
    const page = await api("/api/recordings", { query: { camera_id: camera.camera_id, limit: 3 } });
    const segments = page.items.flatMap((r) => r.segments).filter((s) => s.upload_state === "uploaded");
    segments.sort((a, b) => parseTime(b.start) - parseTime(a.start));
    const latest = segments[0];
    if (!latest) {
      caption.textContent = "No recording yet.";
      return false;
    }
    const video = h("video", { muted: true, preload: "auto", playsinline: true, "aria-label": `Latest picture of ${camera.camera_id}` });
    video.muted = true;
    video.addEventListener("error", () => {
      video.remove();
      caption.textContent = `No preview: this browser cannot decode ${codecOf()} video (latest segment ${clock(parseTime(latest.start))}).`;
    });
    video.addEventListener("loadeddata", () => { caption.textContent = `Latest segment, ${dateTime(parseTime(latest.start))}`; });
    video.src = `${mediaUrl(latest.segment_id)}#t=0.1`;
    figure.prepend(video);
    return true;
  } catch (err) {
    caption.textContent = `No preview: ${errorText(err)}`;
    return false;
  }
}

function cameraCard(nodeId, camera, codecOf) {
  const cells = {};
  const row = (label, key) => [h("dt", {}, label), (cells[key] = h("dd", { dataset: { field: key } }, "—"))];
  const stateBadge = h("span", { class: "badge" }, "…");
  const figure = h("figure", { class: "preview" }, h("figcaption", { class: "muted small" }, "Loading the latest picture…"));
  const card = h("article", { class: "camera card", dataset: { camera: camera.camera_id }, "aria-labelledby": `cam-${camera.camera_id}` },
    h("header", { class: "camera-head" },
      h("h3", { id: `cam-${camera.camera_id}` }, camera.camera_id),
      h("span", { class: "muted" }, camera.name),
      stateBadge),
    h("div", { class: "camera-body" },
      figure,
      h("dl", { class: "health" },
        row("FPS", "fps"), row("Resolution", "resolution"), row("Codec", "codec"),
        row("Bitrate", "bitrate"), row("Reconnects (1 h)", "reconnects"),
        row("Last segment", "lastSegment"),
        h("dt", {}, "Source"), h("dd", { class: "small url" }, `${camera.url} (${camera.transport})`))),
    recordForm(nodeId, camera));
  let previewing = null; // the preview request in flight, or true once shown
  const refreshPreview = () => {
    if (previewing) return;
    previewing = loadPreview(figure, camera, codecOf).then((shown) => { previewing = shown || null; });
  };
  refreshPreview();
  return {
    card,
    refreshPreview,
    update(figures) {
      stateBadge.textContent = figures.state;
      stateBadge.className = `badge state-${figures.state}`;
      stateBadge.title = figures.error ?? "";
      cells.fps.textContent = figures.fps === null ? "—" : figures.fps.toFixed(1);
      for (const key of ["resolution", "codec", "bitrate", "reconnects", "lastSegment"]) {
        cells[key].textContent = String(figures[key]);
      }
    },
  };
}

export function mountNode(main, { nodeId }) {
  let node = null;
  let cameras = [];
  let cameraKey = "";
  let schedulesKey = "";
  const cards = new Map();
  const cameraEvents = new Map(); // camera_id -> latest camera.* event
  let timer = null;

  const status = h("span", { class: "badge", id: "node-status" }, "…");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const facts = h("dl", { class: "facts", id: "node-facts" });
  const heartbeatAge = ageBadge(null);
  const cameraGrid = h("div", { class: "cameras", id: "cameras" }, h("p", { class: "muted" }, "Loading cameras…"));
  const revision = h("div", {});
  const scheduleMessage = h("p", { class: "muted", role: "status", id: "schedule-message" });
  const scheduleHolder = h("div", { class: "table-wrap" });
  const newSchedule = h("button", { type: "button", class: "primary", id: "new-schedule" }, "New schedule");

  replace(main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Fleet"), " › ", nodeId),
    h("div", { class: "page-head" }, h("h1", {}, nodeId), status,
      h("a", { class: "button ghost", href: `#/recordings?node=${encodeURIComponent(nodeId)}` }, "Recordings timeline")),
    error, facts,
    h("section", { "aria-labelledby": "cameras-title" },
      h("div", { class: "section-head" }, h("h2", { id: "cameras-title" }, "Cameras"),
        h("p", { class: "muted small", id: "health-source" }, "Health figures come from the node's heartbeats (and camera events); last heartbeat: ", heartbeatAge, ".")),
      cameraGrid),
    h("section", { "aria-labelledby": "schedules-title" },
      h("div", { class: "section-head" }, h("h2", { id: "schedules-title" }, "Schedules"), newSchedule),
      revision, scheduleMessage, scheduleHolder));

  const report = (text, bad = false) => {
    scheduleMessage.textContent = text;
    scheduleMessage.className = bad ? "bad" : "good";
  };
  const codecOf = (cameraId) => () => {
    const hb = lastHeartbeat(nodeId)?.cameras?.find((c) => c.camera_id === cameraId);
    return hb?.codec ?? cameraEvents.get(cameraId)?.data?.codec ?? "this";
  };

  newSchedule.addEventListener("click", async () => {
    const saved = await editSchedule({ nodeCameras: cameras.map((c) => c.camera_id) });
    if (saved) {
      report(`Schedule ${saved.schedule_id} created.`);
      load();
    }
  });

  function renderFacts() {
    if (!node) return;
    const hb = lastHeartbeat(nodeId);
    status.textContent = node.online ? "online" : "offline";
    status.className = `badge ${node.online ? "badge-online" : "badge-offline"}`;
    const lastBeat = [node.last_heartbeat, hb?.received_at].filter(Boolean).sort().pop() ?? null;
    setAge(heartbeatAge, lastBeat);
    const system = hb?.system ?? node.system;
    const backlog = hb?.upload_backlog ?? node.upload_backlog;
    replace(facts,
      fact("Last heartbeat", ageBadge(lastBeat)),
      fact("Session", String(node.session)),
      fact("Host", system ? `${system.hostname} · ${system.ip}` : "—"),
      fact("OS", system?.os ?? "—"),
      fact("Version", hb?.version ?? "—"),
      fact("Uptime", hb ? duration(hb.uptime_s) : "—"),
      fact("Disk free", hb ? `${bytes(hb.disk_free_bytes)} of ${bytes(hb.disk_total_bytes)}` : "—"),
      fact("Upload backlog", backlog ? (backlog.count ? `${plural(backlog.count, "segment")}, ${bytes(backlog.bytes)}, oldest ${duration(backlog.oldest_s)}` : "none") : "—", "node-backlog"),
      fact("Event outbox", hb ? `${plural(hb.outbox.depth, "event")} waiting` : "—"),
      fact("Missing events", node.seq_gaps ? h("span", { class: "bad" }, `⚠ ${node.seq_gaps}`) : "none"),
      fact("Cameras config", `revision ${node.cameras_revision_applied} of ${node.cameras_revision_desired}`));
    replace(revision, revisionLine(node));
  }

  function renderCameras() {
    const key = JSON.stringify(cameras);
    if (key !== cameraKey) {
      cameraKey = key;
      cards.clear();
      const built = cameras.map((camera) => {
        const card = cameraCard(nodeId, camera, codecOf(camera.camera_id));
        cards.set(camera.camera_id, { camera, ...card });
        return card.card;
      });
      replace(cameraGrid, built.length ? built : h("p", { class: "muted" }, "No cameras on this node."));
    }
    renderHealth();
    for (const { refreshPreview } of cards.values()) refreshPreview(); // until one is shown
  }

  function renderHealth() {
    const hb = lastHeartbeat(nodeId);
    for (const { camera, update } of cards.values()) {
      update(health(camera, hb, cameraEvents.get(camera.camera_id)));
    }
  }

  function renderSchedules(schedules) {
    const key = JSON.stringify(schedules);
    if (key === schedulesKey) return;
    schedulesKey = key;
    replace(scheduleHolder, scheduleTable(schedules, {
      nodeCameras: cameras.map((c) => c.camera_id), changed: load, report,
    }));
  }

  async function load() {
    try {
      const [fresh, cams, schedules, events] = await Promise.all([
        api(`/api/nodes/${encodeURIComponent(nodeId)}`),
        allItems("/api/cameras", { node_id: nodeId }),
        allItems("/api/schedules"),
        api("/api/events", { query: { node_id: nodeId, type: ["camera.online", "camera.offline"], limit: 100 } }),
      ]);
      node = fresh;
      cameras = cams;
      for (const event of [...events.items].reverse()) cameraEvents.set(event.data.camera_id, event);
      const mine = new Set(cams.map((c) => c.camera_id));
      renderFacts();
      renderCameras();
      renderSchedules(schedules.filter((s) => s.camera_ids.some((c) => mine.has(c))));
      error.hidden = true;
    } catch (err) {
      error.textContent = err instanceof ApiError && err.status === 404
        ? `There is no node ${nodeId}.` : `Could not load ${nodeId}: ${errorText(err)}`;
      error.hidden = false;
    }
  }

  const unsubscribe = subscribe((item) => {
    if (item.node_id !== nodeId || !node) return;
    const d = item.data ?? {};
    if (item.kind === "status" && d.session >= node.session) {
      node.online = d.state === "online";
      node.session = d.session;
    } else if (item.kind === "heartbeat") {
      node.schedules_revision_applied = d.schedules_revision;
      node.cameras_revision_applied = d.cameras_revision;
      if (d.session >= node.session) node.online = true;
      renderHealth();
    } else if (item.kind === "state") {
      node.schedules_revision_applied = d.schedules_revision;
      node.cameras_revision_applied = d.cameras_revision;
    } else if (item.type === "camera.online" || item.type === "camera.offline") {
      cameraEvents.set(d.camera_id, item);
      renderHealth();
      return;
    } else {
      return;
    }
    renderFacts();
  });

  load();
  timer = setInterval(load, REFRESH_MS);
  return () => {
    clearInterval(timer);
    unsubscribe();
  };
}
