// Reminders of open chats the agent is not looking at (another pane, or the browser tab hidden), in the mode the
// agent chose: on every new customer message, once a set time after the customer's first unanswered message, or
// never. The choice comes with the page (boot.reminders) and is kept on the agent's profile (protocol §7).

import { ApiError } from "../js/http.js";
import { beep, toast } from "./attention.js";
import { contactName } from "./format.js";
import { notifyReminder } from "./notify.js";
import { api } from "./server.js";
import { boot, state } from "./state.js";
import { activate } from "./tabs.js";

const MODES = new Set(["every_message", "after_first_message", "off"]);
const SECONDS_MIN = 1;
const SECONDS_MAX = 3600;

export const reminders = {
  mode: MODES.has(boot.reminders?.mode) ? boot.reminders.mode : "every_message",
  seconds: Number(boot.reminders?.seconds) || 60,
};

const looking = (chat) => state.active === chat.id && !document.hidden;

/** A toast while the console is on screen, else a desktop notification (when allowed); a click opens the chat. */
function remind(chat, title, body) {
  const open = () => activate(chat.id);
  if (document.hidden) notifyReminder({ tag: `chat-${chat.id}`, title, body, onClick: open });
  else toast({ title, body, onClick: open });
  beep(1);
}

/** A customer's new message in a chat the agent is not looking at (messages.js): reminded in every_message mode. */
export function remindOfMessage(chat, message) {
  if (reminders.mode !== "every_message") return;
  const preview = message.body || ((message.attachments || [])[0] || {}).filename || "";
  remind(chat, `New message from ${contactName(chat.conv.contact)}`, preview);
}

// after_first_message: one reminder per unanswered stretch, checked once a second from the chats' logs (so a
// chat answered, closed or removed simply stops counting: there is no timer of its own to forget). A stretch whose
// time comes while the agent looks at the chat is put off by the same time again.
const stretches = new Map(); // chat id -> {since, from, reminded}: since/from in ms of the server's clock
let ticker = null;

/** The customer's messages after the last reply the customer could see (a pending one counts, a failed one does
 * not): the first of them, or null when the chat is answered or not the agent's to answer. */
function firstUnanswered(chat) {
  if (chat.conv.status !== "open" || chat.conv.access === "read") return null;
  const shown = chat.els.log.querySelectorAll("li.cc-msg:not(.is-note):not(.is-history)");
  let first = null;
  for (let i = shown.length - 1; i >= 0; i -= 1) {
    const li = shown[i];
    if (li.classList.contains("is-visitor")) first = li;
    else if (!li.classList.contains("is-failed")) break;
  }
  return first && first.dataset.time ? first : null;
}

function tick() {
  const now = Date.now() + state.serverOffsetMs;
  const waitMs = reminders.seconds * 1000;
  for (const id of [...stretches.keys()]) if (!state.chats.has(id)) stretches.delete(id);
  for (const chat of state.chats.values()) {
    const li = firstUnanswered(chat);
    if (!li) {
      stretches.delete(chat.id);
      continue;
    }
    const since = Date.parse(li.dataset.time);
    let stretch = stretches.get(chat.id);
    if (!stretch || stretch.since !== since) {
      stretch = { since, from: since, reminded: false };
      stretches.set(chat.id, stretch);
    }
    if (stretch.reminded || now < stretch.from + waitMs) continue;
    if (looking(chat)) {
      stretch.from = now;
      continue;
    }
    stretch.reminded = true;
    const preview = li.querySelector(".cc-bubble")?.textContent || "";
    remind(chat, `${contactName(chat.conv.contact)} is waiting for a reply`, preview);
  }
}

function applyMode() {
  clearInterval(ticker);
  ticker = null;
  stretches.clear();
  if (reminders.mode === "after_first_message") ticker = setInterval(tick, 1000);
}

// The header's Reminders popover.
const $ = (id) => document.getElementById(id);
const button = $("cc-reminders-btn");
const panel = $("cc-reminders-panel");
const modeField = $("cc-reminders-mode");
const secondsWrap = $("cc-reminders-seconds-wrap");
const secondsField = $("cc-reminders-seconds");
const error = $("cc-reminders-error");
const status = $("cc-reminders-status");
const save = $("cc-reminders-save");

function showError(text) {
  error.textContent = text;
  error.hidden = !text;
}

function fillForm() {
  modeField.value = reminders.mode;
  secondsField.value = String(reminders.seconds);
  secondsWrap.hidden = reminders.mode !== "after_first_message";
  showError("");
  status.textContent = "";
}

function togglePanel(open) {
  if (open) fillForm();
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
}

button.addEventListener("click", (event) => {
  event.stopPropagation();
  togglePanel(panel.hidden);
});
document.addEventListener("click", (event) => {
  if (!panel.hidden && !panel.contains(event.target)) togglePanel(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !panel.hidden) togglePanel(false);
});
modeField.addEventListener("change", () => {
  secondsWrap.hidden = modeField.value !== "after_first_message";
  status.textContent = "";
});

panel.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  status.textContent = "";
  const mode = modeField.value;
  const seconds = Number(secondsField.value);
  const timed = mode === "after_first_message";
  if (timed && !(Number.isInteger(seconds) && seconds >= SECONDS_MIN && seconds <= SECONDS_MAX)) {
    showError(`Seconds are a whole number from ${SECONDS_MIN} to ${SECONDS_MAX}.`);
    secondsField.focus();
    return;
  }
  save.disabled = true;
  try {
    const json = timed ? { reminder_mode: mode, reminder_seconds: seconds } : { reminder_mode: mode };
    const data = await api("/preferences", { method: "POST", json });
    reminders.mode = data.preferences.reminder_mode;
    reminders.seconds = data.preferences.reminder_seconds;
    applyMode();
    status.textContent = "Saved.";
  } catch (failure) {
    const fields = failure instanceof ApiError ? failure.fields : {};
    showError((fields.reminder_seconds || fields.reminder_mode || [])[0] || failure.message);
  } finally {
    save.disabled = false;
  }
});

applyMode();
