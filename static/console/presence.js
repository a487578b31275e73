// The agent's status control (online, away, paused for one of the tenant's reasons, offline) and the notice
// shown when the server paused the agent for a chat offer they did not answer in time.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { request } from "./server.js";
import { state, ui } from "./state.js";

// A pickable pause is the option "paused:<pause reason id>"; online, away and offline keep their own values.
const PAUSED = "paused:";
// The current status when no option can be picked for it (the server's "Missed offer" pause, a retired reason).
const CURRENT = "current";

const PRESENCE_TEXT = {
  online: "You are online: new chats are offered to you.",
  away: "You are away: no new chats are offered to you. You can still pick up waiting chats.",
  paused: "You are paused: no new chats are offered to you.",
  offline: "You are offline. Set yourself online to receive chats.",
};

/** A pause reason as frames carry it (`agent.presence`: its name; `hello.me`: {id, name}) as its name. */
export function reasonName(reason) {
  if (!reason) return null;
  return typeof reason === "string" ? reason : reason.name || null;
}

function statusLabel(presence, reason) {
  if (presence === "paused") return reason ? `Paused: ${reason}` : "Paused";
  return presence ? presence[0].toUpperCase() + presence.slice(1) : "";
}

function statusText(presence, reason) {
  if (presence === "paused" && reason) {
    return `You are paused (${reason}): no new chats are offered to you. Set yourself online to receive chats again.`;
  }
  return PRESENCE_TEXT[presence] || "";
}

/** The tenant's pause reasons (hello): one "Paused: <name>" option each, between Away and Offline. The
 * caller shows the status again (setPresence) afterwards: its option may have been among those replaced. */
export function setPauseReasons(reasons) {
  state.pauseReasons = Array.isArray(reasons) ? reasons : [];
  for (const option of ui.presence.querySelectorAll(".js-pause-option")) option.remove();
  const offline = ui.presence.querySelector('option[value="offline"]');
  for (const reason of state.pauseReasons) {
    const option = h("option", { cls: "js-pause-option", text: `Paused: ${reason.name}`, attrs: { value: `${PAUSED}${reason.id}` } });
    ui.presence.insertBefore(option, offline);
  }
}

/** Shows the agent's status; `reason` is the pause reason's name (ignored unless paused). */
export function setPresence(presence, reason = null) {
  const why = presence === "paused" ? reasonName(reason) : null;
  state.me.presence = presence;
  state.me.pauseReasonName = why;
  let value = presence;
  if (presence === "paused") {
    const pickable = state.pauseReasons.find((r) => r.name === why);
    value = pickable ? `${PAUSED}${pickable.id}` : CURRENT;
  }
  let current = ui.presence.querySelector(".js-current-option");
  if (value === CURRENT || !ui.presence.querySelector(`option[value="${CSS.escape(value)}"]`)) {
    value = CURRENT;
    if (!current) {
      current = h("option", { cls: "js-current-option", attrs: { value: CURRENT } });
      current.disabled = true; // shown, never picked: only the server sets it
      ui.presence.insertBefore(current, ui.presence.querySelector('option[value="offline"]'));
    }
    current.textContent = statusLabel(presence, why);
  } else if (current) {
    current.remove();
  }
  ui.presence.value = value;
  ui.presenceWrap.dataset.presence = presence;
  ui.presenceWrap.title = statusLabel(presence, why);
  ui.homeStatus.textContent = statusText(presence, why);
  if (presence === "online") hideMissedNotice();
}

/** `offer.withdrawn` with reason `missed`: the server pauses the agent (its `agent.presence` follows). */
export function showMissedNotice() {
  ui.missed.hidden = false;
}

function hideMissedNotice() {
  ui.missed.hidden = true;
}

ui.missedClose.addEventListener("click", hideMissedNotice);

ui.presence.addEventListener("change", () => {
  const wanted = ui.presence.value;
  const before = { presence: state.me.presence, reason: state.me.pauseReasonName };
  const frame = { type: "presence.set", presence: wanted };
  let reason = null;
  if (wanted.startsWith(PAUSED)) {
    const id = Number(wanted.slice(PAUSED.length));
    frame.presence = "paused";
    frame.pause_reason_id = id;
    reason = reasonName(state.pauseReasons.find((r) => r.id === id));
  }
  request(frame, {
    ok: () => {
      hideMissedNotice(); // the agent has acted on it
      setPresence(frame.presence, reason);
    },
    fail: (error) => {
      setPresence(before.presence, before.reason);
      errorToast(error.message);
    },
  });
});
