// Drawing the agent's attention: a beep, the browser tab's title, toasts.

import { h } from "../js/dom.js";
import { markRead } from "./messages.js";
import { state, ui } from "./state.js";

const TOAST_MS = 8000;

let audio = null;
// Browsers only let a page make sound after a user gesture: the context is created on the first one.
document.addEventListener(
  "pointerdown",
  () => {
    if (!audio && window.AudioContext) audio = new AudioContext();
  },
  { once: true },
);

export function beep(times = 1) {
  if (!audio) return;
  if (audio.state === "suspended") audio.resume();
  for (let i = 0; i < times; i += 1) {
    const start = audio.currentTime + i * 0.22;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = i % 2 ? 660 : 880;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(start);
    osc.stop(start + 0.2);
  }
}

const baseTitle = document.title;

/** Flashes the browser tab's title while offers wait, or while unread messages wait in a hidden tab. */
export function updateTitle() {
  const unread = [...state.chats.values()].filter((chat) => chat.unread).length;
  let alert = "";
  if (state.offers.size) alert = state.offers.size === 1 ? "Incoming chat" : `${state.offers.size} incoming chats`;
  else if (unread && document.visibilityState === "hidden") alert = unread === 1 ? "New message" : `${unread} chats with new messages`;
  clearInterval(state.titleTimer);
  state.titleTimer = null;
  document.title = alert ? `● ${alert}` : baseTitle;
  if (alert) {
    let on = true;
    state.titleTimer = setInterval(() => {
      on = !on;
      document.title = on ? `● ${alert}` : baseTitle;
    }, 1000);
  }
}

document.addEventListener("visibilitychange", () => {
  updateTitle();
  const chat = state.chats.get(state.active);
  if (chat) markRead(chat);
});

export function toast({ title, body, onClick, kind, sticky = false }) {
  const el = h("div", { cls: `cc-toast${kind === "error" ? " is-error" : ""}`, attrs: { role: kind === "error" ? "alert" : "status" } }, [
    h("div", { cls: "cc-toast-main" }, [
      h("div", { cls: "cc-toast-title", text: title }),
      body ? h("div", { cls: "cc-toast-body", text: body }) : null,
    ]),
  ]);
  const close = h("button", { cls: "cc-toast-close", text: "×", attrs: { type: "button", "aria-label": "Dismiss" } });
  el.appendChild(close);
  const remove = () => el.remove();
  close.addEventListener("click", (event) => {
    event.stopPropagation();
    remove();
  });
  if (onClick) {
    el.addEventListener("click", () => {
      remove();
      onClick();
    });
  }
  ui.toasts.appendChild(el);
  while (ui.toasts.children.length > 4) ui.toasts.firstElementChild.remove();
  if (!sticky) setTimeout(remove, TOAST_MS);
}

export function errorToast(message) {
  toast({ title: "Not done", body: message, kind: "error" });
}
