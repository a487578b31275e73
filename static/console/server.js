// The console's connection to the server: the agent socket (static/js/protocol.js) and the console HTTP API (§7).

import { api as fetchJson, ApiError } from "../js/http.js";
import { ProtocolClient, socketUrl } from "../js/protocol.js";
import { onFrame } from "./dispatch.js";
import { boot, ui } from "./state.js";

export async function api(path, { method = "GET", form, json } = {}) {
  try {
    return await fetchJson(`/console/api${path}`, { method, form, json, csrf: true });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) location.href = boot.loginUrl;
    throw error;
  }
}

export const client = new ProtocolClient({
  url: () => socketUrl("/ws/agent/"),
  onOpen: () => {
    showConn("");
    send({ type: "ping" }); // its pong gives the server's clock at once
  },
  onFrame,
  onClose: onSocketClosed,
});

export const send = (frame) => client.send(frame);

// Back to the tab (or the laptop woken): ping at once rather than within 20 s, so an offer or waiting chat
// whose event was lost meanwhile is shown now (the pong comes after a `state.sync` when anything differs).
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") send({ type: "ping" });
});
export const request = (frame, handlers) => client.request(frame, handlers);

function onSocketClosed(code, { reconnecting }) {
  ui.presence.disabled = true;
  if (code === 4401) {
    location.href = boot.loginUrl;
    return;
  }
  if (code === 4403) {
    showConn("Your account cannot use the console. Ask an admin to add you to the team.", true);
    return;
  }
  if (reconnecting) showConn("Connection lost. Reconnecting…");
}

function showConn(text, isError = false) {
  ui.conn.textContent = text;
  ui.conn.classList.toggle("is-error", isError);
  ui.conn.hidden = !text;
}
