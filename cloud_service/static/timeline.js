// Recordings: a per-camera timeline of a node's segments over one day (or a
// zoomed window of it), coloured by upload state, with the coverage gaps
// from /api/coverage under each bar; a segment plays in the <video> below.

import { ApiError, allItems, api, errorText } from "./api.js";
import {
  bytes, clock, count, duration, h, localDay, parseTime, plural, replace, shortClock,
} from "./dom.js";
import { subscribe } from "./live.js";
import { createPlayer } from "./player.js";

const ZOOMS = [
  { value: "day", label: "Whole day", ms: 0, tickMin: 180 },
  { value: "6h", label: "6 hours", ms: 6 * 3600e3, tickMin: 60 },
  { value: "1h", label: "1 hour", ms: 3600e3, tickMin: 10 },
  { value: "15m", label: "15 minutes", ms: 900e3, tickMin: 2 },
  { value: "5m", label: "5 minutes", ms: 300e3, tickMin: 1 },
];
const STATES = ["uploaded", "pending", "failed", "evicted"];
const REFRESH_MS = 15000;
const MAX_BUTTONS = 1500; // per camera and window; beyond it, runs are drawn merged
const PAGE = 500;

// Kept across visits so coming back shows the same node, day and zoom.
const view = { nodeId: null, day: null, zoom: "day", windowStart: null };

function dayBounds(day) {
  const [y, m, d] = day.split("-").map(Number);
  return [new Date(y, m - 1, d), new Date(y, m - 1, d + 1)];
}

function shiftDay(day, by) {
  const [y, m, d] = day.split("-").map(Number);
  return localDay(new Date(y, m - 1, d + by));
}

const zoomOf = () => ZOOMS.find((z) => z.value === view.zoom) ?? ZOOMS[0];

// The window shown: the whole day, or `zoom` of it starting at windowStart.
function windowBounds() {
  const [dayStart, dayEnd] = dayBounds(view.day);
  const zoom = zoomOf();
  if (!zoom.ms) return [dayStart, dayEnd];
  let start = view.windowStart ?? dayStart;
  start = new Date(Math.min(Math.max(start, dayStart), dayEnd - zoom.ms));
  view.windowStart = start;
  return [start, new Date(start.getTime() + zoom.ms)];
}

function recordingEnd(recording) {
  const ends = recording.segments.map((s) => parseTime(s.end)).filter(Boolean);
  const stopped = parseTime(recording.stopped_at);
  if (stopped) return stopped;
  return ends.length ? new Date(Math.max(...ends)) : null;
}

// Recordings that overlap [since, until): they started before `until`; going
// back in time, stop after two full pages with nothing that reaches `since`.
async function recordingsOverlapping(nodeId, since, until, signal) {
  const found = [];
  let quiet = 0;
  for (let offset = 0; offset < 40 * PAGE; offset += PAGE) {
    const page = await api("/api/recordings", { query: { node_id: nodeId, until, limit: PAGE, offset }, signal });
    let overlapping = 0;
    for (const recording of page.items) {
      const end = recordingEnd(recording);
      if (end !== null && end < since) continue;
      found.push(recording);
      overlapping += 1;
    }
    if (page.items.length < PAGE) break;
    quiet = overlapping ? 0 : quiet + 1;
    if (quiet >= 2) break;
  }
  return found;
}

function coverageText(c) {
  if (!c) return "";
  if (!c.scheduled_s) return `no schedule in this period · ${duration(c.recorded_s)} recorded`;
  const ratio = c.ratio === null ? "" : ` (${Math.round(c.ratio * 100)}%)`;
  return `${duration(c.recorded_s)} recorded of ${duration(c.scheduled_s)} scheduled${ratio} · ${plural(c.gaps.length, "gap")}`;
}

function ticks(start, end, tickMin) {
  const out = [];
  const t = new Date(start);
  t.setSeconds(0, 0);
  const minutes = t.getHours() * 60 + t.getMinutes();
  t.setHours(0, Math.ceil(minutes / tickMin) * tickMin, 0, 0);
  const margin = (end - start) * 0.03; // a label at the very edge would spill over
  for (; t < end; t.setMinutes(t.getMinutes() + tickMin)) {
    if (t - start >= margin && end - t >= margin) out.push(new Date(t));
  }
  return out;
}

// Neighbouring segments of one state within `tolerance` ms, as one block.
function runs(segments, tolerance) {
  const out = [];
  for (const s of segments) {
    const last = out[out.length - 1];
    if (last && last.state === s.upload_state && s.startMs - last.end <= tolerance) {
      last.end = Math.max(last.end, s.endMs);
      last.n += 1;
    } else {
      out.push({ state: s.upload_state, start: s.startMs, end: s.endMs, n: 1 });
    }
  }
  return out;
}

export function mountTimeline(main, { query }) {
  view.nodeId = query.get("node") ?? view.nodeId;
  view.day = query.get("day") ?? view.day ?? localDay();
  let data = { cameras: [], segments: new Map(), coverage: new Map() };
  let selected = null; // the segment playing
  let controller = null;
  let loading = null; // the load in flight, if any
  let timer = null;
  let pending = null;
  let alive = true;

  const nodeInput = h("input", { id: "tl-node", list: "tl-nodes", value: view.nodeId ?? "", autocomplete: "off", spellcheck: "false", placeholder: "node id" });
  const nodeList = h("datalist", { id: "tl-nodes" });
  const dayInput = h("input", { id: "tl-day", type: "date", value: view.day, max: localDay() });
  const zoom = h("select", { id: "tl-zoom" }, ZOOMS.map((z) => h("option", { value: z.value, selected: z.value === view.zoom }, z.label)));
  const earlier = h("button", { type: "button", class: "ghost" }, "← Earlier");
  const later = h("button", { type: "button", class: "ghost" }, "Later →");
  const now = h("button", { type: "button", class: "ghost" }, "Now");
  const status = h("p", { class: "muted", role: "status", id: "tl-status" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const timeline = h("div", { class: "timeline", id: "timeline" });

  const player = createPlayer((step) => {
    const [before, after] = neighbours(selected);
    const target = step < 0 ? before : after;
    if (target) play(target);
  });
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Recordings")),
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); changeNode(); } },
      h("div", { class: "field" }, h("label", { for: "tl-node" }, "Node"), nodeInput, nodeList),
      h("div", { class: "field" }, h("label", { for: "tl-day" }, "Day"), dayInput),
      h("div", { class: "field" }, h("label", { for: "tl-zoom" }, "Zoom"), zoom),
      h("div", { class: "field buttons", role: "group", "aria-label": "Move the window" }, earlier, now, later)),
    h("p", { class: "legend", "aria-label": "Legend" },
      STATES.map((s) => h("span", { class: "key" }, h("span", { class: `swatch st-${s}` }), s)),
      h("span", { class: "key" }, h("span", { class: "swatch gap" }), "scheduled, not recorded"),
      h("span", { class: "key" }, h("span", { class: "swatch now" }), "now")),
    status, error, timeline, player.element);

  function remember() {
    const target = `#/recordings?node=${encodeURIComponent(view.nodeId ?? "")}&day=${view.day}`;
    if (window.location.hash !== target) window.history.replaceState(null, "", target);
  }

  // Automatic updates: at most one load in flight and one waiting, so a busy
  // stream (a segment and an upload per camera every few seconds) never
  // starves the page of updates nor piles requests up.
  function refreshSoon(delay = 1000) {
    if (pending) return;
    pending = setTimeout(async () => {
      await loading;
      pending = null;
      if (alive) load();
    }, delay);
  }

  function load() {
    const current = loadNow().finally(() => { if (loading === current) loading = null; });
    loading = current;
    return current;
  }

  async function loadNow() {
    if (!view.nodeId) {
      const first = await api("/api/nodes", { query: { limit: 1 } }).catch(() => null);
      if (!first?.items.length) {
        status.textContent = "There are no nodes yet.";
        return;
      }
      view.nodeId = first.items[0].node_id;
      nodeInput.value = view.nodeId;
    }
    remember();
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    const nodeId = view.nodeId;
    const [since, until] = dayBounds(view.day);
    const coverageUntil = new Date(Math.min(until, Date.now()));
    if (!data.loaded || data.nodeId !== nodeId || data.day !== view.day) status.textContent = `Loading ${nodeId}…`;
    try {
      const [cameras, recordings, coverage] = await Promise.all([
        allItems("/api/cameras", { node_id: nodeId }, { signal }),
        recordingsOverlapping(nodeId, since, until, signal),
        coverageUntil > since
          ? api("/api/coverage", { query: { node_id: nodeId, since, until: coverageUntil }, signal })
          : Promise.resolve({ items: [] }),
      ]);
      const segments = new Map();
      for (const recording of recordings) {
        for (const s of recording.segments) {
          const start = parseTime(s.start);
          const end = parseTime(s.end);
          if (!start || !end || end < since || start >= until) continue;
          const list = segments.get(recording.camera_id) ?? [];
          list.push({ ...s, camera_id: recording.camera_id, trigger: recording.trigger, startMs: +start, endMs: +end });
          segments.set(recording.camera_id, list);
        }
      }
      for (const list of segments.values()) list.sort((a, b) => a.startMs - b.startMs);
      data = { cameras, segments, coverage: new Map(coverage.items.map((c) => [c.camera_id, c])), loaded: true, nodeId, day: view.day };
      const total = [...segments.values()].reduce((n, list) => n + list.length, 0);
      status.textContent = `${nodeId}, ${view.day}: ${plural(total, "segment")} from ${plural(recordings.length, "recording")}.`;
      error.hidden = true;
      render();
    } catch (err) {
      if (err.name === "AbortError") return;
      error.textContent = err instanceof ApiError && err.status === 422
        ? `“${nodeId}” is not a node id.` : `Could not load recordings: ${errorText(err)}`;
      error.hidden = false;
      status.textContent = "";
    }
  }

  function render() {
    const [ws, we] = windowBounds();
    const span = we - ws;
    const pct = (t) => `${((t - ws) / span) * 100}%`;
    const nowMs = Date.now();
    const focused = document.activeElement?.dataset?.segment;
    const cameraIds = [...new Set([...data.cameras.map((c) => c.camera_id), ...data.segments.keys(), ...data.coverage.keys()])].sort();
    const tickMin = zoomOf().tickMin;
    const axis = h("div", { class: "axis", "aria-hidden": "true" },
      ticks(ws, we, tickMin).map((t) => h("span", { class: "tick", style: { left: pct(t) } }, shortClock(t))));
    const tracks = cameraIds.map((cameraId) => {
      const all = data.segments.get(cameraId) ?? [];
      const visible = all.filter((s) => s.endMs > +ws && s.startMs < +we);
      const bar = h("div", { class: "bar", role: "group", "aria-label": `Segments of ${cameraId}` });
      if (visible.length <= MAX_BUTTONS) {
        for (const s of visible) {
          const left = Math.max(s.startMs, +ws);
          const label = `${cameraId} ${clock(new Date(s.startMs))}–${clock(new Date(s.endMs))}, ${s.upload_state}`;
          const button = h("button", {
            type: "button", class: `seg st-${s.upload_state}${s.segment_id === selected?.segment_id ? " selected" : ""}`,
            style: { left: pct(left), width: pct(+ws + Math.min(s.endMs, +we) - left) },
            title: `${label} (${bytes(s.bytes)}, ${s.trigger})`, "aria-label": label,
            "aria-pressed": String(s.segment_id === selected?.segment_id),
            dataset: { segment: s.segment_id, state: s.upload_state },
          });
          button.addEventListener("click", () => play(s));
          bar.append(button);
        }
      } else {
        // Too many to draw one by one: merged blocks; a click plays what is under it.
        for (const run of runs(visible, span / 1000)) {
          const left = Math.max(run.start, +ws);
          bar.append(h("div", { class: `run st-${run.state}`, title: `${count(run.n)} segments, ${run.state}`,
            style: { left: pct(left), width: pct(+ws + Math.min(run.end, +we) - left) } }));
        }
        bar.addEventListener("click", (event) => {
          const rect = bar.getBoundingClientRect();
          const t = +ws + ((event.clientX - rect.left) / rect.width) * span;
          const hit = visible.find((s) => s.startMs <= t && t < s.endMs)
            ?? visible.reduce((a, b) => (Math.abs(a.startMs - t) < Math.abs(b.startMs - t) ? a : b));
          play(hit);
        });
      }
      if (nowMs > +ws && nowMs < +we) bar.append(h("div", { class: "now-line", style: { left: pct(nowMs) }, "aria-hidden": "true" }));
      const coverage = data.coverage.get(cameraId);
      const gaps = h("div", { class: "gaps", "aria-label": `Coverage gaps of ${cameraId}` });
      for (const gap of coverage?.gaps ?? []) {
        const start = Math.max(+parseTime(gap.start), +ws);
        const end = Math.min(+parseTime(gap.end), +we);
        if (end <= start) continue;
        gaps.append(h("div", { class: "gap", title: `scheduled but not recorded ${clock(new Date(start))}–${clock(new Date(end))}`,
          style: { left: pct(start), width: pct(+ws + end - start) } }));
      }
      return h("div", { class: "track", dataset: { camera: cameraId } },
        h("div", { class: "track-label" }, h("strong", {}, cameraId),
          h("span", { class: "coverage small muted" }, coverageText(coverage)),
          h("span", { class: "small muted" }, `${plural(visible.length, "segment")} in view`)),
        h("div", { class: "track-bars" }, bar, gaps));
    });
    replace(timeline,
      h("div", { class: "track axis-row" }, h("div", { class: "track-label small muted" },
        zoomOf().ms ? `${shortClock(ws)} – ${shortClock(we)}` : `${view.day}, whole day`), axis),
      tracks.length ? tracks : h("p", { class: "muted" }, "This node has no cameras."));
    if (focused) timeline.querySelector(`[data-segment="${CSS.escape(focused)}"]`)?.focus();
  }

  function neighbours(segment) {
    const list = data.segments.get(segment.camera_id) ?? [];
    const i = list.findIndex((s) => s.segment_id === segment.segment_id);
    return [list[i - 1] ?? null, list[i + 1] ?? null];
  }

  function play(segment) {
    selected = segment;
    for (const el of timeline.querySelectorAll(".seg")) {
      const on = el.dataset.segment === segment.segment_id;
      el.classList.toggle("selected", on);
      el.setAttribute("aria-pressed", String(on));
    }
    const [before, after] = neighbours(segment);
    player.play(segment, { hasPrevious: Boolean(before), hasNext: Boolean(after) });
  }

  function changeNode() {
    const value = nodeInput.value.trim();
    if (value && value !== view.nodeId) {
      view.nodeId = value;
      load();
    }
  }
  nodeInput.addEventListener("change", changeNode);
  dayInput.addEventListener("change", () => {
    if (!dayInput.value) return;
    view.day = dayInput.value;
    view.windowStart = null;
    load();
  });
  zoom.addEventListener("change", () => {
    const [ws, we] = windowBounds();
    view.zoom = zoom.value;
    const ms = zoomOf().ms;
    // Zoom around the middle of what was shown (or around now, if it is shown).
    const nowMs = Date.now();
    const centre = nowMs > +ws && nowMs < +we ? nowMs : (+ws + +we) / 2;
    view.windowStart = ms ? new Date(centre - ms * (centre === nowMs ? 0.75 : 0.5)) : null;
    render();
  });
  function move(direction) {
    const ms = zoomOf().ms;
    if (!ms) {
      view.day = shiftDay(view.day, direction);
    } else {
      const [ws] = windowBounds();
      const [dayStart, dayEnd] = dayBounds(view.day);
      if (direction < 0 && +ws === +dayStart) {
        view.day = shiftDay(view.day, -1);
        view.windowStart = new Date(dayStart - ms);
      } else if (direction > 0 && +ws + ms === +dayEnd) {
        view.day = shiftDay(view.day, 1);
        view.windowStart = dayEnd;
      } else {
        view.windowStart = new Date(+ws + direction * ms * 0.5); // clamped to the day
      }
    }
    if (view.day > localDay()) view.day = localDay();
    dayInput.value = view.day;
    load();
  }
  earlier.addEventListener("click", () => move(-1));
  later.addEventListener("click", () => move(1));
  now.addEventListener("click", () => {
    view.day = localDay();
    dayInput.value = view.day;
    const ms = zoomOf().ms;
    view.windowStart = ms ? new Date(Date.now() - ms * 0.75) : null;
    load();
  });

  api("/api/nodes", { query: { limit: 200 } }).then((page) => {
    replace(nodeList, page.items.map((n) => h("option", { value: n.node_id })));
  }).catch(() => {});

  const unsubscribe = subscribe((item) => {
    if (item.node_id !== view.nodeId || item.kind !== "event") return;
    if (/^(recording|upload|storage)\./.test(item.type)) refreshSoon();
  });
  timer = setInterval(() => {
    const [, until] = dayBounds(view.day);
    if (until > Date.now() - 60e3) refreshSoon(0); // only a day still being recorded changes
  }, REFRESH_MS);
  load();
  return () => {
    controller?.abort();
    alive = false;
    clearInterval(timer);
    clearTimeout(pending);
    unsubscribe();
  };
}
