// The recordings page's player: one segment at a time in a <video>, fed by
// /api/segments/{id}/media?token= (a <video> cannot send a header), with a
// plain explanation when the browser cannot decode what the camera recorded.

import { mediaUrl } from "./api.js";
import { bytes, clock, dateTime, duration, h } from "./dom.js";

const UNDECODABLE = "This browser cannot decode this segment's video (H.265 cameras are copied "
  + "as they are, and segments from older nodes that decoded MJPEG or USB cameras are MPEG-4 "
  + "Part 2, which browsers do not play): download it for a desktop player.";

// `navigate(step)` is called with -1 or +1 by the previous/next buttons.
export function createPlayer(navigate) {
  const video = h("video", { id: "player-video", controls: true, preload: "auto", playsinline: true, hidden: true });
  const caption = h("p", { id: "player-caption" }, "Choose a segment on the timeline to play it.");
  const message = h("p", { id: "player-message", role: "status", class: "muted" });
  const download = h("a", { class: "button ghost", id: "player-download", hidden: true }, "Download");
  const previous = h("button", { type: "button", class: "ghost", disabled: true }, "← Previous segment");
  const next = h("button", { type: "button", class: "ghost", disabled: true }, "Next segment →");
  previous.addEventListener("click", () => navigate(-1));
  next.addEventListener("click", () => navigate(1));

  video.addEventListener("error", () => {
    if (!video.getAttribute("src")) return;
    const code = video.error?.code;
    message.className = "bad";
    message.textContent = code === 4 // MEDIA_ERR_SRC_NOT_SUPPORTED
      ? UNDECODABLE
      : `The segment could not be played (${video.error?.message || `media error ${code}`}).`;
  });

  function play(segment, { hasPrevious, hasNext }) {
    const start = new Date(segment.startMs);
    const length = duration((segment.endMs - segment.startMs) / 1000);
    caption.textContent = `${segment.camera_id} · ${dateTime(start)} – ${clock(new Date(segment.endMs))} · ${length} · ${bytes(segment.bytes)} · ${segment.upload_state} · ${segment.trigger}`;
    previous.disabled = !hasPrevious;
    next.disabled = !hasNext;
    message.className = "muted";
    if (segment.upload_state !== "uploaded") {
      video.removeAttribute("src");
      video.load();
      download.hidden = true;
      message.textContent = `This segment is ${segment.upload_state}: only uploaded segments can be played.`;
      return;
    }
    message.textContent = "";
    video.hidden = false;
    const src = mediaUrl(segment.segment_id);
    download.href = src;
    download.download = `${segment.camera_id}-${start.toISOString().replace(/[:.]/g, "")}.mp4`;
    download.hidden = false;
    video.src = src;
    video.play().catch(() => {}); // refused autoplay still leaves it loaded
  }

  const element = h("section", { class: "player card", "aria-labelledby": "player-title" },
    h("h2", { id: "player-title" }, "Playback"), video, caption, message,
    h("div", { class: "actions" }, previous, next, download));
  return { element, play };
}
