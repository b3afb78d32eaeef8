// Building DOM nodes and formatting values for people. Data is always put in
// as text (never innerHTML), so nothing a node reports can inject markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// -- values -----------------------------------------------------------------

export const parseTime = (value) => (value ? new Date(value) : null);

export function ago(date, now = Date.now()) {
  if (!date) return "never";
  const s = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// A heartbeat is "fresh" within three of the default 30 s intervals; after
// five minutes the node is as good as gone whatever its status says.
export function staleness(date, now = Date.now()) {
  if (!date) return "never";
  const s = (now - date.getTime()) / 1000;
  if (s <= 90) return "fresh";
  if (s <= 300) return "stale";
  return "dead";
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${units[unit]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const hours = Math.floor(s / 3600);
  if (hours < 48) return `${hours} h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function bitrate(bps) {
  if (bps === null || bps === undefined) return "—";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

export const count = (n) => (n ?? 0).toLocaleString();
export const plural = (n, one, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`;

const clockFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const shortClockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit",
});

export const clock = (date) => (date ? clockFormat.format(date) : "—");
export const shortClock = (date) => (date ? shortClockFormat.format(date) : "—");
export const dateTime = (date) => (date ? dateTimeFormat.format(date) : "—");

const pad = (n) => String(n).padStart(2, "0");

// YYYY-MM-DD of a Date in the browser's time zone (what <input type=date> holds).
export function localDay(date = new Date()) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// -- heartbeat ages, kept current by one ticker (see app.js) ------------------

export function ageBadge(iso) {
  const span = h("span", { class: "age", dataset: { age: iso ?? "" } });
  refreshAge(span);
  return span;
}

export function refreshAge(el, now = Date.now()) {
  const date = parseTime(el.dataset.age);
  el.textContent = ago(date, now);
  el.className = `age age-${staleness(date, now)}`;
  el.title = date ? `last heartbeat ${dateTime(date)}` : "no heartbeat yet";
}

export function refreshAges(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("[data-age]")) refreshAge(el, now);
}

export function setAge(el, iso) {
  el.dataset.age = iso ?? "";
  refreshAge(el);
}
