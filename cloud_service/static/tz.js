// Time zones for schedule definitions: local wall-clock times in an IANA zone
// converted to and from the UTC instants the API stores, with no library.

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function zoneNames() {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    // an old browser: the browser's own zone and UTC still work
  }
  return [...new Set([...names, "UTC", browserZone()])].sort();
}

const formats = new Map();

function wallClock(ms, zone) {
  let format = formats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formats.set(zone, format);
  }
  const parts = {};
  for (const part of format.formatToParts(new Date(ms))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return parts;
}

// How far the zone's wall clock is ahead of UTC at the instant `ms`.
function offsetMs(ms, zone) {
  const p = wallClock(ms, zone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

// "2026-03-29T02:30" in `zone` -> Date. Twice, so an offset that changes
// between the guess and the answer (a DST switch) is taken from the answer.
export function zonedToUtc(local, zone) {
  const [day, time] = local.split("T");
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm, ss = 0] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm, ss);
  const first = wall - offsetMs(wall, zone);
  return new Date(wall - offsetMs(first, zone));
}

const pad = (n) => String(n).padStart(2, "0");

// Date or ISO string -> "YYYY-MM-DDTHH:MM" on the zone's wall clock.
export function utcToZoned(value, zone) {
  const p = wallClock(new Date(value).getTime(), zone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}`;
}
