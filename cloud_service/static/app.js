// The dashboard's entry point: sign-in with an API token (kept in
// sessionStorage), a hash router over the views, the live stream and the
// ticker that keeps heartbeat ages current. Nothing here is fetched from
// anywhere but this service.

import { clearToken, errorText, setToken, token, tokenAccepted, whenUnauthorized } from "./api.js";
import { refreshAges } from "./dom.js";
import { mountFeed } from "./feed.js";
import { mountFleet } from "./fleet.js";
import { connect, disconnect, onConnectionState } from "./live.js";
import { mountNode } from "./node.js";
import { mountTimeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const signin = $("signin");
const app = $("app");
const main = $("main");
const signinError = $("signin-error");

let unmountView = null;
let unmountFeed = null;
let ticker = null;

const CONNECTION_LABELS = {
  connecting: ["connecting…", "pill-wait"],
  live: ["live", "pill-live"],
  reconnecting: ["reconnecting…", "pill-wait"],
  down: ["live updates lost, retrying", "pill-down"],
};

onConnectionState((state) => {
  const [text, cls] = CONNECTION_LABELS[state];
  const pill = $("live-state");
  pill.textContent = text;
  pill.className = `pill ${cls}`;
});

function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  const query = new URLSearchParams(search);
  const node = path.match(/^\/nodes\/([^/]+)$/);
  if (node) return { name: "node", mount: mountNode, params: { nodeId: decodeURIComponent(node[1]) }, title: decodeURIComponent(node[1]) };
  if (path === "/recordings") return { name: "recordings", mount: mountTimeline, params: { query }, title: "Recordings" };
  return { name: "fleet", mount: mountFleet, params: { query }, title: "Fleet" };
}

function render() {
  if (!token()) return;
  unmountView?.();
  const { name, mount, params, title } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · CCTV fleet`;
  main.replaceChildren();
  unmountView = mount(main, params);
}

function start() {
  signin.hidden = true;
  app.hidden = false;
  connect();
  unmountFeed = mountFeed($("feed"));
  ticker = setInterval(() => refreshAges(), 1000);
  render();
  main.focus({ preventScroll: true });
}

function stop(message = "") {
  unmountView?.();
  unmountView = null;
  unmountFeed?.();
  unmountFeed = null;
  clearInterval(ticker);
  disconnect();
  clearToken();
  main.replaceChildren();
  app.hidden = true;
  signin.hidden = false;
  signinError.textContent = message;
  signinError.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("token");
  const candidate = input.value.trim();
  const button = event.target.querySelector("button[type=submit]");
  signinError.hidden = true;
  if (!candidate) {
    signinError.textContent = "Enter an API token.";
    signinError.hidden = false;
    return;
  }
  button.disabled = true;
  try {
    if (await tokenAccepted(candidate)) {
      setToken(candidate);
      start();
    } else {
      signinError.textContent = "That token was refused. Check it and try again.";
      signinError.hidden = false;
      input.select();
    }
  } catch (error) {
    signinError.textContent = `Could not sign in: ${errorText(error)}`;
    signinError.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("signout").addEventListener("click", () => stop());
whenUnauthorized(() => {
  if (token()) stop("The service no longer accepts this token: sign in again.");
});
window.addEventListener("hashchange", render);

if (token()) start();
else stop();
