// The one server-sent event stream (/api/stream) the page keeps open, handed
// to whichever views subscribe. It also remembers each node's last heartbeat,
// which is where camera health figures come from.

import { Unauthorized, api, streamUrl } from "./api.js";

// The stream names each message by event type, or by channel for the rest.
export const STREAM_KINDS = [
  "status", "state", "heartbeat", "replies",
  "recording.started", "recording.segment", "recording.stopped", "recording.failed",
  "upload.completed", "upload.failed", "camera.online", "camera.offline", "storage.evicted",
];
const RETRY_MS = 5000;
const HEARTBEATS_KEPT = 2000;

const listeners = new Set();
const heartbeats = new Map();
let source = null;
let retryTimer = null;
let stateHandler = () => {};

export function onConnectionState(handler) {
  stateHandler = handler;
}

export function connect() {
  disconnect();
  stateHandler("connecting");
  source = new EventSource(streamUrl());
  source.addEventListener("open", () => stateHandler("live"));
  source.addEventListener("error", () => {
    if (source?.readyState === EventSource.CLOSED) {
      // Refused (e.g. 401) or the service is gone: the browser will not retry.
      stateHandler("down");
      retryLater();
    } else {
      stateHandler("reconnecting");
    }
  });
  for (const kind of STREAM_KINDS) {
    source.addEventListener(kind, (message) => dispatch(message.data));
  }
}

export function disconnect() {
  clearTimeout(retryTimer);
  source?.close();
  source = null;
}

function retryLater() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(async () => {
    try {
      await api("/api/nodes", { query: { limit: 1 } }); // a 401 signs out instead
      connect();
    } catch (error) {
      if (!(error instanceof Unauthorized)) retryLater();
    }
  }, RETRY_MS);
}

function dispatch(text) {
  let item;
  try {
    item = JSON.parse(text);
  } catch {
    return;
  }
  if (item.kind === "heartbeat") remember(item.node_id, item.data);
  for (const listener of listeners) {
    try {
      listener(item);
    } catch (error) {
      console.error("stream listener failed", error);
    }
  }
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function remember(nodeId, heartbeat) {
  heartbeats.delete(nodeId);
  heartbeats.set(nodeId, { ...heartbeat, received_at: new Date().toISOString() });
  if (heartbeats.size > HEARTBEATS_KEPT) heartbeats.delete(heartbeats.keys().next().value);
}

export const lastHeartbeat = (nodeId) => heartbeats.get(nodeId) ?? null;
