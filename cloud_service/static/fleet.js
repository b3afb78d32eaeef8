// The fleet overview: one row per node, a page at a time (limit/offset), so a
// fleet of 10,000 nodes costs one small request per refresh. Rows are patched
// in place from the live stream (status, heartbeat, applied state).

import { api, errorText } from "./api.js";
import { ageBadge, bytes, count, duration, h, plural, replace, setAge } from "./dom.js";
import { subscribe } from "./live.js";

const REFRESH_MS = 10000;
const SEARCH_REFRESH_MS = 30000;
const CAMERA_COUNT_TTL_MS = 60000;
const PAGE_SIZES = [25, 50, 100, 200];

// Kept across visits so "back" returns to the same page and filters.
const view = { status: "all", search: "", limit: 50, offset: 0 };
const cameraCounts = new Map(); // node_id -> {count, at}

function onlineParam() {
  if (view.status === "online") return true;
  if (view.status === "offline") return false;
  return undefined;
}

const SEARCH_PAGE = 1000; // the API's largest page
const SEARCH_WORKERS = 3;

// The nodes whose id, hostname or IP contain `term`, read a page at a time
// with a few requests in flight; results come back in node_id order.
async function searchFleet(term, online, signal, progress) {
  const first = await api("/api/nodes", { query: { limit: SEARCH_PAGE, offset: 0, online }, signal });
  const pages = [first.items];
  const offsets = [];
  for (let offset = SEARCH_PAGE; offset < first.total; offset += SEARCH_PAGE) offsets.push(offset);
  let done = first.items.length;
  progress(done, first.total);
  const worker = async () => {
    while (offsets.length) {
      const offset = offsets.shift();
      const page = await api("/api/nodes", { query: { limit: SEARCH_PAGE, offset, online }, signal });
      pages[offset / SEARCH_PAGE] = page.items;
      done += page.items.length;
      progress(done, first.total);
    }
  };
  await Promise.all(Array.from({ length: SEARCH_WORKERS }, worker));
  return pages.flat().filter((node) => matchesSearch(node, term));
}

const matchesSearch = (node, term) => [node.node_id, node.system?.hostname, node.system?.ip]
  .some((value) => value && value.toLowerCase().includes(term));

function backlogText(backlog) {
  if (!backlog) return { text: "—", cls: "" };
  if (!backlog.count) return { text: "none", cls: "good" };
  return {
    text: `${plural(backlog.count, "segment")} · ${bytes(backlog.bytes)} · oldest ${duration(backlog.oldest_s)}`,
    cls: backlog.oldest_s > 600 ? "warn" : "",
  };
}

export function driftText(node) {
  const parts = [];
  if (node.schedules_revision_applied !== node.schedules_revision_desired) {
    parts.push(`schedules ${node.schedules_revision_applied} of ${node.schedules_revision_desired}`);
  }
  if (node.cameras_revision_applied !== node.cameras_revision_desired) {
    parts.push(`cameras ${node.cameras_revision_applied} of ${node.cameras_revision_desired}`);
  }
  return parts.length ? { text: parts.join(", "), cls: "warn" } : { text: "in sync", cls: "good" };
}

function fillRow(tr, node) {
  const cells = tr.cells;
  cells[0].querySelector(".host").textContent = node.system ? `${node.system.hostname} · ${node.system.ip}` : "";
  const status = cells[1].firstChild;
  status.textContent = node.online ? "online" : "offline";
  status.className = `badge ${node.online ? "badge-online" : "badge-offline"}`;
  setAge(cells[2].firstChild, node.last_heartbeat);
  const cameras = cameraCounts.get(node.node_id);
  cells[3].textContent = cameras ? count(cameras.count) : "…";
  const backlog = backlogText(node.upload_backlog);
  cells[4].textContent = backlog.text;
  cells[4].className = backlog.cls;
  const drift = driftText(node);
  cells[5].textContent = drift.text;
  cells[5].className = `drift ${drift.cls}`;
  cells[6].textContent = node.seq_gaps ? `⚠ ${plural(node.seq_gaps, "missing event")}` : "—";
  cells[6].className = node.seq_gaps ? "bad" : "muted";
  tr.classList.toggle("is-offline", !node.online);
}

function makeRow(node) {
  const link = h("a", { href: `#/nodes/${encodeURIComponent(node.node_id)}` }, node.node_id);
  const host = h("div", { class: "muted small host" });
  const tr = h("tr", { dataset: { node: node.node_id } },
    h("th", { scope: "row" }, link, host),
    h("td", { class: "status" }, h("span")),
    h("td", { class: "heartbeat" }, ageBadge(node.last_heartbeat)),
    h("td", { class: "num camera-count" }),
    h("td"), h("td"), h("td"));
  fillRow(tr, node);
  return tr;
}

export function mountFleet(main) {
  const rows = new Map(); // node_id -> {node, tr}
  let controller = null;
  let timer = null;
  let searchTimer = null;
  let refreshes = 0;

  const summary = h("p", { class: "summary", role: "status" }, "Loading the fleet…");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const search = h("input", { type: "search", id: "fleet-search", value: view.search,
    placeholder: "node id, hostname or IP", autocomplete: "off" });
  const statusChoices = ["all", "online", "offline"].map((value) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "fleet-status", value, checked: view.status === value }),
    value === "all" ? "All" : value === "online" ? "Online" : "Offline"));
  const pageSize = h("select", { id: "fleet-page-size" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === view.limit }, n)));
  const tbody = h("tbody");
  const prev = h("button", { type: "button", class: "ghost" }, "← Previous");
  const next = h("button", { type: "button", class: "ghost" }, "Next →");
  const range = h("span", { class: "muted", role: "status" });

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Fleet"), summary),
    h("form", { class: "toolbar", role: "search", onsubmit: (e) => e.preventDefault() },
      h("div", { class: "field" }, h("label", { for: "fleet-search" }, "Search"), search),
      h("fieldset", { class: "choices" }, h("legend", {}, "Show"), statusChoices),
      h("div", { class: "field" }, h("label", { for: "fleet-page-size" }, "Per page"), pageSize)),
    error,
    h("div", { class: "table-wrap" },
      h("table", { class: "data nodes", id: "nodes" },
        h("caption", { class: "sr-only" }, "Nodes of the fleet"),
        h("thead", {}, h("tr", {},
          ["Node", "Status", "Last heartbeat", "Cameras", "Upload backlog",
            "Schedule drift", "Warnings"].map((t) => h("th", { scope: "col" }, t)))),
        tbody)),
    h("nav", { class: "pager", "aria-label": "Pages of nodes" }, prev, range, next));

  async function load() {
    controller?.abort();
    controller = new AbortController();
    const { signal } = controller;
    try {
      const term = view.search.trim().toLowerCase();
      let page;
      if (term) {
        // The API filters by status only: a search reads the (filtered) fleet
        // a thousand nodes per request and keeps the matches.
        summary.textContent = "Searching…";
        const found = await searchFleet(term, onlineParam(), signal, (done, total) => {
          summary.textContent = `Searching… ${count(done)} of ${count(total)} nodes`;
        });
        page = { items: found.slice(view.offset, view.offset + view.limit), total: found.length };
      } else {
        page = await api("/api/nodes", { query: { limit: view.limit, offset: view.offset, online: onlineParam() }, signal });
      }
      if (page.items.length === 0 && view.offset > 0 && page.total > 0) {
        view.offset = Math.max(0, Math.floor((page.total - 1) / view.limit) * view.limit);
        return load();
      }
      const [all, online] = await Promise.all([
        api("/api/nodes", { query: { limit: 1 }, signal }),
        api("/api/nodes", { query: { limit: 1, online: true }, signal }),
      ]);
      summary.textContent = `${plural(all.total, "node")} · ${count(online.total)} online · ${count(all.total - online.total)} offline`;
      render(page, term);
      error.hidden = true;
      countCameras(page.items.map((n) => n.node_id), signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      error.textContent = `Could not load the fleet: ${errorText(err)}`;
      error.hidden = false;
    }
  }

  function render(page, term) {
    const same = page.items.length > 0 && page.items.length === rows.size
      && page.items.every((node, i) => tbody.rows[i]?.dataset.node === node.node_id);
    if (same) {
      // The same nodes: update the rows in place (keeps focus and selection).
      for (const node of page.items) {
        const row = rows.get(node.node_id);
        row.node = node;
        fillRow(row.tr, node);
      }
    } else {
      replaceRows(page, term);
    }
    const first = page.total ? view.offset + 1 : 0;
    range.textContent = `${count(first)}–${count(view.offset + page.items.length)} of ${count(page.total)}`;
    prev.disabled = view.offset === 0;
    next.disabled = view.offset + view.limit >= page.total;
  }

  function replaceRows(page, term) {
    rows.clear();
    const trs = page.items.map((node) => {
      const tr = makeRow(node);
      rows.set(node.node_id, { node, tr });
      return tr;
    });
    if (!trs.length) {
      const what = term ? `No node matches “${view.search.trim()}”` : "No nodes";
      trs.push(h("tr", {}, h("td", { colspan: 7, class: "muted empty" }, `${what}${view.status === "all" ? "" : ` (${view.status})`}.`)));
    }
    tbody.replaceChildren(...trs);
  }

  // Camera counts for the rows on screen, a few requests at a time, cached.
  async function countCameras(nodeIds, signal) {
    const now = Date.now();
    const due = nodeIds.filter((id) => !(now - (cameraCounts.get(id)?.at ?? 0) < CAMERA_COUNT_TTL_MS));
    const worker = async () => {
      while (due.length && !signal.aborted) {
        const nodeId = due.shift();
        try {
          const page = await api("/api/cameras", { query: { node_id: nodeId, limit: 1 }, signal });
          cameraCounts.set(nodeId, { count: page.total, at: Date.now() });
          const row = rows.get(nodeId);
          if (row) fillRow(row.tr, row.node);
        } catch {
          return;
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  function restart() {
    clearInterval(timer);
    timer = setInterval(() => {
      refreshes += 1;
      if (!view.search.trim() || refreshes % Math.round(SEARCH_REFRESH_MS / REFRESH_MS) === 0) load();
    }, REFRESH_MS);
  }

  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      view.search = search.value;
      view.offset = 0;
      load();
    }, 300);
  });
  for (const label of statusChoices) {
    label.querySelector("input").addEventListener("change", (event) => {
      view.status = event.target.value;
      view.offset = 0;
      load();
    });
  }
  pageSize.addEventListener("change", () => {
    view.limit = Number(pageSize.value);
    view.offset = 0;
    load();
  });
  prev.addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); load(); });
  next.addEventListener("click", () => { view.offset += view.limit; load(); });

  const unsubscribe = subscribe((item) => {
    const row = rows.get(item.node_id);
    if (!row) return;
    const { node, tr } = row;
    const d = item.data ?? {};
    if (item.kind === "status" && d.session >= node.session) {
      node.online = d.state === "online";
      node.session = d.session;
    } else if (item.kind === "heartbeat") {
      if (d.session >= node.session) node.online = true;
      node.last_heartbeat = new Date().toISOString();
      node.upload_backlog = d.upload_backlog;
      node.system = d.system;
      node.schedules_revision_applied = d.schedules_revision;
      node.cameras_revision_applied = d.cameras_revision;
    } else if (item.kind === "state") {
      node.schedules_revision_applied = d.schedules_revision;
      node.cameras_revision_applied = d.cameras_revision;
    } else {
      return;
    }
    fillRow(tr, node);
  });

  load();
  restart();
  return () => {
    controller?.abort();
    clearInterval(timer);
    clearTimeout(searchTimer);
    unsubscribe();
  };
}
