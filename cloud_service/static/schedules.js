// The schedules editor: a node's schedules in a table (enable/disable, edit,
// delete) and a dialog to create or edit one of the five kinds. Each change
// is a whole document PUT or POST; the service republishes the node's
// ScheduleSet with the next revision.

import { api, errorText } from "./api.js";
import { h } from "./dom.js";
import { browserZone, utcToZoned, zoneNames, zonedToUtc } from "./tz.js";

export const KINDS = ["continuous", "daily", "weekly", "once", "cron"];
const KIND_LABELS = {
  continuous: "Continuous — all the time",
  daily: "Daily — a window every day",
  weekly: "Weekly — a window on chosen days",
  once: "Once — from a start to an end",
  cron: "Cron — start on a cron expression, for a duration",
};
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const ID_PATTERN = "[a-z0-9][a-z0-9\\-]{0,62}";

const hhmm = (time) => String(time ?? "").slice(0, 5);

export function whenText(s) {
  switch (s.kind) {
    case "continuous":
      return "all the time";
    case "daily":
      return `every day ${hhmm(s.start_time)}–${hhmm(s.end_time)}`;
    case "weekly":
      return `${s.days.join(", ")} ${hhmm(s.start_time)}–${hhmm(s.end_time)}`;
    case "once":
      return `${utcToZoned(s.start, s.tz).replace("T", " ")} → ${utcToZoned(s.end, s.tz).replace("T", " ")}`;
    case "cron":
      return `cron “${s.expression}” for ${s.duration_s} s`;
    default:
      return s.kind;
  }
}

function field(label, control, hint) {
  const id = control.id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
}

// The document the form describes; only the chosen kind's fields are sent.
function readForm(form, otherCameras) {
  const data = new FormData(form);
  const kind = data.get("kind");
  const tz = data.get("tz");
  const schedule = {
    schedule_id: String(data.get("schedule_id")).trim(),
    camera_ids: [...data.getAll("camera_ids"), ...otherCameras],
    kind,
    tz,
    enabled: data.get("enabled") === "on",
    segment_seconds: Number(data.get("segment_seconds")),
  };
  if (kind === "daily" || kind === "weekly") {
    schedule.start_time = data.get("start_time");
    schedule.end_time = data.get("end_time");
  }
  if (kind === "weekly") schedule.days = data.getAll("days");
  if (kind === "once") {
    schedule.start = zonedToUtc(String(data.get("start")), tz).toISOString();
    schedule.end = zonedToUtc(String(data.get("end")), tz).toISOString();
  }
  if (kind === "cron") {
    schedule.expression = String(data.get("expression")).trim();
    schedule.duration_s = Number(data.get("duration_s"));
  }
  return schedule;
}

// Opens the editor; resolves with the saved schedule, or null if cancelled.
export function editSchedule({ schedule = null, nodeCameras }) {
  const editing = schedule !== null;
  const s = schedule ?? { kind: "continuous", tz: browserZone(), enabled: true, segment_seconds: 60, camera_ids: nodeCameras.slice(0, 1) };
  const mine = new Set(nodeCameras);
  const otherCameras = (s.camera_ids ?? []).filter((c) => !mine.has(c));
  const zones = zoneNames();
  if (!zones.includes(s.tz)) zones.unshift(s.tz);
  const now = new Date();
  const inAnHour = new Date(now.getTime() + 3600e3);

  const kind = h("select", { id: "sched-kind", name: "kind" },
    KINDS.map((k) => h("option", { value: k, selected: k === s.kind }, KIND_LABELS[k])));
  const sections = {
    continuous: h("p", { class: "hint" }, "Records the cameras all the time, cut into segments."),
    daily: h("div", { class: "row" },
      field("Start time", h("input", { id: "sched-daily-start", name: "start_time", type: "time", required: true, value: hhmm(s.start_time) || "08:00" })),
      field("End time", h("input", { id: "sched-daily-end", name: "end_time", type: "time", required: true, value: hhmm(s.end_time) || "18:00" }),
        "An end before the start crosses midnight.")),
    weekly: h("div", {},
      h("fieldset", { class: "choices" }, h("legend", {}, "Days"),
        DAYS.map((d) => h("label", { class: "choice" },
          h("input", { type: "checkbox", name: "days", value: d, checked: (s.days ?? ["mon", "tue", "wed", "thu", "fri"]).includes(d) }), d))),
      h("div", { class: "row" },
        field("Start time", h("input", { id: "sched-weekly-start", name: "start_time", type: "time", required: true, value: hhmm(s.start_time) || "08:00" })),
        field("End time", h("input", { id: "sched-weekly-end", name: "end_time", type: "time", required: true, value: hhmm(s.end_time) || "18:00" })))),
    once: h("div", { class: "row" },
      field("Start", h("input", { id: "sched-once-start", name: "start", type: "datetime-local", required: true, value: utcToZoned(s.start ?? now, s.tz) })),
      field("End", h("input", { id: "sched-once-end", name: "end", type: "datetime-local", required: true, value: utcToZoned(s.end ?? inAnHour, s.tz) }),
        "Wall-clock times in the schedule's time zone.")),
    cron: h("div", { class: "row" },
      field("Cron expression", h("input", { id: "sched-cron-expression", name: "expression", required: true, value: s.expression ?? "0 8 * * mon-fri", spellcheck: "false" }),
        "minute hour day-of-month month day-of-week, in the time zone"),
      field("Duration (s)", h("input", { id: "sched-cron-duration", name: "duration_s", type: "number", min: 1, max: 86400, required: true, value: s.duration_s ?? 3600 }))),
  };
  const kindFields = h("div", { class: "kind-fields" }, Object.entries(sections).map(([k, node]) =>
    h("fieldset", { class: "kind", dataset: { kind: k } }, h("legend", {}, `${k[0].toUpperCase()}${k.slice(1)} schedule`), node)));

  function showKind() {
    for (const fs of kindFields.children) {
      const on = fs.dataset.kind === kind.value;
      fs.hidden = !on;
      fs.disabled = !on; // disabled fields are neither validated nor submitted
    }
  }
  kind.addEventListener("change", showKind);

  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "primary" }, editing ? "Save changes" : "Create schedule");
  const cancel = h("button", { type: "button", class: "ghost" }, "Cancel");
  const form = h("form", { class: "editor", method: "dialog" },
    h("h2", { id: "sched-editor-title" }, editing ? `Edit schedule ${s.schedule_id}` : "New schedule"),
    h("div", { class: "row" },
      field("Schedule id", h("input", { id: "sched-id", name: "schedule_id", required: true, pattern: ID_PATTERN, value: s.schedule_id ?? "", readonly: editing, spellcheck: "false", autocomplete: "off" }),
        "Lowercase letters, digits and dashes."),
      field("Kind", kind)),
    h("fieldset", { class: "choices" }, h("legend", {}, "Cameras"),
      nodeCameras.length ? nodeCameras.map((c) => h("label", { class: "choice" },
        h("input", { type: "checkbox", name: "camera_ids", value: c, checked: (s.camera_ids ?? []).includes(c) }), c))
        : h("span", { class: "muted" }, "This node has no cameras."),
      otherCameras.length ? h("p", { class: "hint" }, `Also records on other nodes: ${otherCameras.join(", ")} (kept).`) : null),
    h("div", { class: "row" },
      field("Time zone", h("select", { id: "sched-tz", name: "tz" },
        zones.map((z) => h("option", { value: z, selected: z === s.tz }, z)))),
      field("Segment length (s)", h("input", { id: "sched-segment", name: "segment_seconds", type: "number", min: 2, max: 3600, required: true, value: s.segment_seconds ?? 60 })),
      h("label", { class: "choice enabled" }, h("input", { type: "checkbox", name: "enabled", checked: s.enabled !== false }), "Enabled")),
    kindFields, error,
    h("div", { class: "actions" }, cancel, save));
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "sched-editor-title" }, form);
  showKind();
  document.body.append(dialog);

  return new Promise((resolve) => {
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(result); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      if (!form.querySelector("input[name=camera_ids]:checked") && !otherCameras.length) {
        error.textContent = "Choose at least one camera.";
        error.hidden = false;
        return;
      }
      const body = readForm(form, otherCameras);
      save.disabled = true;
      try {
        result = editing
          ? await api(`/api/schedules/${encodeURIComponent(body.schedule_id)}`, { method: "PUT", body })
          : await api("/api/schedules", { method: "POST", body });
        dialog.close();
      } catch (err) {
        error.textContent = `Not saved: ${errorText(err)}`;
        error.hidden = false;
      } finally {
        save.disabled = false;
      }
    });
    dialog.showModal();
  });
}

// The table of a node's schedules; `changed()` is called after every change.
export function scheduleTable(schedules, { nodeCameras, changed, report }) {
  const mine = new Set(nodeCameras);
  if (!schedules.length) {
    return h("p", { class: "muted", id: "schedules-empty" }, "No schedule records this node's cameras yet.");
  }
  const rows = schedules.map((s) => {
    const toggle = h("input", { type: "checkbox", checked: s.enabled, "aria-label": `Enabled: ${s.schedule_id}` });
    toggle.addEventListener("change", async () => {
      toggle.disabled = true;
      try {
        await api(`/api/schedules/${encodeURIComponent(s.schedule_id)}`, { method: "PUT", body: { ...s, enabled: toggle.checked } });
        report(`Schedule ${s.schedule_id} ${toggle.checked ? "enabled" : "disabled"}.`);
        changed();
      } catch (err) {
        toggle.checked = !toggle.checked;
        report(`Could not change ${s.schedule_id}: ${errorText(err)}`, true);
      } finally {
        toggle.disabled = false;
      }
    });
    const edit = h("button", { type: "button", class: "ghost small" }, "Edit");
    edit.setAttribute("aria-label", `Edit schedule ${s.schedule_id}`);
    edit.addEventListener("click", async () => {
      const saved = await editSchedule({ schedule: s, nodeCameras });
      if (saved) { report(`Schedule ${saved.schedule_id} saved.`); changed(); }
    });
    const remove = h("button", { type: "button", class: "ghost small danger" }, "Delete");
    remove.setAttribute("aria-label", `Delete schedule ${s.schedule_id}`);
    remove.addEventListener("click", async () => {
      if (!window.confirm(`Delete schedule ${s.schedule_id}? Cameras it alone records stop recording.`)) return;
      try {
        await api(`/api/schedules/${encodeURIComponent(s.schedule_id)}`, { method: "DELETE" });
        report(`Schedule ${s.schedule_id} deleted.`);
        changed();
      } catch (err) {
        report(`Could not delete ${s.schedule_id}: ${errorText(err)}`, true);
      }
    });
    const cameras = s.camera_ids.map((c) => (mine.has(c) ? c : `${c} (other node)`)).join(", ");
    return h("tr", { dataset: { schedule: s.schedule_id }, class: s.enabled ? "" : "is-disabled" },
      h("th", { scope: "row" }, s.schedule_id),
      h("td", {}, s.kind),
      h("td", {}, whenText(s)),
      h("td", {}, s.tz),
      h("td", {}, cameras),
      h("td", { class: "num" }, `${s.segment_seconds} s`),
      h("td", {}, h("label", { class: "switch" }, toggle, h("span", {}, s.enabled ? "on" : "off"))),
      h("td", { class: "actions" }, edit, remove));
  });
  return h("table", { class: "data schedules", id: "schedules" },
    h("caption", { class: "sr-only" }, "Schedules that record this node's cameras"),
    h("thead", {}, h("tr", {}, ["Schedule", "Kind", "When", "Time zone", "Cameras", "Segments", "Enabled", "Actions"]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}
