// The agent's presence picker (online, away, offline; paused is the server's).

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { request } from "./server.js";
import { state, ui } from "./state.js";

const PRESENCE_TEXT = {
  online: "You are online: new chats are offered to you.",
  away: "You are away: no new chats are offered to you. You can still pick up waiting chats.",
  paused: "You are paused: no new chats are offered to you.",
  offline: "You are offline. Set yourself online to receive chats.",
};

export function setPresence(presence) {
  state.me.presence = presence;
  let option = ui.presence.querySelector(`option[value="${CSS.escape(presence)}"]`);
  if (!option) {
    // "paused" is set by the server (e.g. a missed offer), not chosen here.
    option = h("option", { text: presence[0].toUpperCase() + presence.slice(1), attrs: { value: presence } });
    option.disabled = true;
    ui.presence.appendChild(option);
  }
  ui.presence.value = presence;
  ui.presenceWrap.dataset.presence = presence;
  ui.homeStatus.textContent = PRESENCE_TEXT[presence] || "";
}

ui.presence.addEventListener("change", () => {
  const wanted = ui.presence.value;
  const before = state.me.presence;
  request(
    { type: "presence.set", presence: wanted },
    {
      ok: () => setPresence(wanted),
      fail: (error) => {
        setPresence(before);
        errorToast(error.message);
      },
    },
  );
});
