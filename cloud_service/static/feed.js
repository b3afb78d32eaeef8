// The live event feed beside every page: what the fleet reports as it is
// stored, newest first. Heartbeats and applied-state reports update the views
// but are not listed (a large fleet sends hundreds a second).

import { api } from "./api.js";
import { bytes, clock, duration, h, parseTime, replace } from "./dom.js";
import { subscribe } from "./live.js";

const KEPT = 200;
const SEEDED = 30;

function seconds(start, end) {
  const a = parseTime(start);
  const b = parseTime(end);
  return a && b ? (b - a) / 1000 : null;
}

// One line of text for an item of the stream (or an event from /api/events).
export function describe(item) {
  const d = item.data ?? {};
  switch (item.type ?? item.kind) {
    case "recording.started":
      return `${d.camera_id} started recording (${d.trigger}${d.schedule_id ? ` ${d.schedule_id}` : ""})`;
    case "recording.segment":
      return `${d.camera_id} segment ${duration(seconds(d.start, d.end))}, ${bytes(d.bytes)}, ${d.codec}`;
    case "recording.stopped":
      return `${d.camera_id} stopped: ${d.reason} (${d.segments} segments)`;
    case "recording.failed":
      return `${d.camera_id} failed: ${d.error}${d.will_retry ? " (will retry)" : ""}`;
    case "upload.completed":
      return `segment uploaded, ${bytes(d.bytes)}`;
    case "upload.failed":
      return `upload failed (attempt ${d.attempt}): ${d.error}`;
    case "camera.online":
      return `${d.camera_id} online${d.width ? ` ${d.width}×${d.height}` : ""}${d.codec ? ` ${d.codec}` : ""}`;
    case "camera.offline":
      return `${d.camera_id} offline${d.error ? `: ${d.error}` : ""}`;
    case "storage.evicted":
      return `segment deleted locally${d.uploaded ? "" : " before upload"} (${d.reason})`;
    case "status":
      return `node ${d.state} (session ${d.session})`;
    case "replies":
      return `command ${d.ok ? "accepted" : `refused: ${d.error}`}`;
    default:
      return item.type ?? item.kind;
  }
}

export function severity(item) {
  const type = item.type ?? item.kind;
  const d = item.data ?? {};
  if (type.endsWith(".failed") || type === "storage.evicted" || type === "camera.offline") return "bad";
  if (type === "status") return d.state === "online" ? "good" : "bad";
  if (type === "replies") return d.ok ? "good" : "bad";
  return "info";
}

export function mountFeed(aside) {
  let paused = false;
  let filter = "";
  const list = h("ol", { class: "feed-list", "aria-label": "Latest events, newest first" });
  const empty = h("p", { class: "muted feed-empty" }, "Waiting for events…");
  const pause = h("button", { type: "button", class: "ghost small", "aria-pressed": "false" }, "Pause");
  const search = h("input", {
    type: "search", id: "feed-filter", placeholder: "node, camera or type",
    autocomplete: "off",
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
  });
  search.addEventListener("input", () => {
    filter = search.value.trim().toLowerCase();
    for (const li of list.children) li.hidden = !matches(li);
  });

  replace(aside,
    h("div", { class: "feed-head" },
      h("h2", { id: "feed-title" }, "Live events"), pause),
    h("label", { for: "feed-filter", class: "sr-only" }, "Filter events"),
    search, empty, list);

  const matches = (li) => !filter || li.dataset.text.includes(filter);

  function add(item, { atEnd = false } = {}) {
    const type = item.type ?? item.kind;
    // An event carries the node's time of it; a status (a Last Will's time is
    // when it was armed) or a reply is shown at its arrival.
    const when = parseTime(item.received_at ?? item.ts) ?? new Date();
    const text = describe(item);
    const li = h("li", { class: `feed-item sev-${severity(item)}`, dataset: {
      text: `${item.node_id} ${type} ${text}`.toLowerCase(), type, node: item.node_id,
    } },
    h("time", { datetime: when.toISOString() }, clock(when)),
    h("a", { class: "feed-node", href: `#/nodes/${encodeURIComponent(item.node_id)}` }, item.node_id),
    h("span", { class: "feed-type" }, type),
    h("span", { class: "feed-text" }, text));
    li.hidden = !matches(li);
    if (atEnd) list.append(li);
    else list.prepend(li);
    while (list.children.length > KEPT) list.lastElementChild.remove();
    empty.hidden = true;
  }

  const unsubscribe = subscribe((item) => {
    if (paused || item.kind === "heartbeat" || item.kind === "state") return;
    add(item);
  });

  // Start with the most recent stored events so the feed is never blank.
  api("/api/events", { query: { limit: SEEDED } })
    .then((page) => { for (const event of page.items) add(event, { atEnd: true }); })
    .catch(() => {});

  return () => unsubscribe();
}
