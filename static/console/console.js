/*
 * Switchboard agent console: the agent's side of docs/protocol.md (§4 agent socket, §7 console HTTP API).
 *
 * One socket (/ws/agent/) carries offers, the waiting list, presence and every open chat. Each
 * accepted chat gets a tab and a pane cloned from <template id="cc-chat-template">.
 *
 * Rules kept throughout:
 *   - text from people (messages, names, survey answers, file names, server messages) only ever goes
 *     into the page through textContent, never as HTML;
 *   - own messages show at once as "Sending", become "Sent" on their ack, and are resent with the
 *     same client_id after a reconnect until acked (the server dedupes);
 *   - after every (re)connect each open chat is resumed from its highest seq: the database is the truth.
 */
import { ApiError, api as fetchJson } from "../js/http.js";
import { clock, formatBytes, h, scrollToEnd as scrollLogToEnd } from "../js/dom.js";
import { ProtocolClient, isStale, socketUrl } from "../js/protocol.js";

const boot = JSON.parse(document.getElementById("cc-boot").textContent);
const TYPING_IDLE_MS = 3000;
const TYPING_REPEAT_MS = 2000;
const TOAST_MS = 8000;
const EMOJI = [
  "😀", "😃", "😄", "😊", "🙂", "😉", "😍", "🤗", "🤔", "😅", "😂", "😢", "😮", "😎", "🙏", "👍",
  "👎", "👌", "👋", "👏", "💪", "🙌", "✅", "❌", "⚠️", "❗", "❓", "💡", "🎉", "🎁", "❤️", "💙",
  "⭐", "🔥", "⏰", "📦", "🚚", "📧", "📞", "💳", "🧾", "🔒", "🔧", "📎", "📅", "☕", "🌟", "👀",
];
const PRESENCE_TEXT = {
  online: "You are online: new chats are offered to you.",
  away: "You are away: no new chats are offered to you. You can still pick up waiting chats.",
  paused: "You are paused: no new chats are offered to you.",
  offline: "You are offline. Set yourself online to receive chats.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  tabs: $("cc-tabs"),
  homeTab: $("cc-tab-home"),
  main: $("cc-main"),
  homePane: $("cc-pane-home"),
  homeStatus: $("cc-home-status"),
  myChats: $("cc-my-chats"),
  myChatsEmpty: $("cc-my-chats-empty"),
  homeWaiting: $("cc-home-waiting"),
  homeWaitingEmpty: $("cc-home-waiting-empty"),
  waitingBtn: $("cc-waiting-btn"),
  waitingCount: $("cc-waiting-count"),
  waitingPanel: $("cc-waiting-panel"),
  waitingList: $("cc-waiting-list"),
  waitingEmpty: $("cc-waiting-empty"),
  presence: $("cc-presence"),
  presenceWrap: $("cc-presence-wrap"),
  conn: $("cc-conn"),
  offers: $("cc-offers"),
  toasts: $("cc-toasts"),
  chatTemplate: $("cc-chat-template"),
};

const state = {
  me: { user_id: boot.userId, name: boot.agentName, presence: boot.presence },
  serverOffsetMs: 0, // server clock minus ours, from pong frames: waiting times use the server's clock
  chats: new Map(), // conversation id -> chat (see createChat)
  offers: new Map(), // conversation id -> {offer, el}
  waiting: new Map(), // conversation id -> waiting item
  dispositions: [],
  templates: [],
  limits: { max_chars: 4000 },
  active: "home",
  previous: "home",
  focusOnAssign: new Set(),
  titleTimer: null,
};

// --- small helpers -----------------------------------------------------------------------------

function dateTime(iso) {
  return new Date(iso).toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

function elapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** A live counter: refreshed every second from its data-since (server time) or data-local (our time). */
function counter({ since, local }) {
  const node = h("span", { cls: "js-counter" });
  if (since) node.dataset.since = since;
  if (local) node.dataset.local = String(local);
  tickCounter(node);
  return node;
}

function tickCounter(node) {
  const ms = node.dataset.since
    ? Date.now() + state.serverOffsetMs - Date.parse(node.dataset.since)
    : Date.now() - Number(node.dataset.local);
  node.textContent = elapsed(ms);
}

setInterval(() => document.querySelectorAll(".js-counter").forEach(tickCounter), 1000);

function contactUrl(contactId) {
  return boot.contactUrl.replace(/\/0\/$/, `/${encodeURIComponent(contactId)}/`);
}

/** The widget's admin-set page for agents, only when it is a plain web address. */
function externalUrlOf(widget) {
  const url = (widget && widget.agent_external_url) || "";
  return /^https?:\/\//i.test(url) ? url : "";
}

function contactName(contact) {
  return (contact && contact.name) || "Visitor";
}

async function api(path, { method = "GET", form } = {}) {
  try {
    return await fetchJson(`/console/api${path}`, { method, form, csrf: true });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) location.href = boot.loginUrl;
    throw error;
  }
}

// --- attention: sound, title, toasts -------------------------------------------------------------

let audio = null;
// Browsers only let a page make sound after a user gesture: the context is created on the first one.
document.addEventListener(
  "pointerdown",
  () => {
    if (!audio && window.AudioContext) audio = new AudioContext();
  },
  { once: true },
);

function beep(times = 1) {
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
function updateTitle() {
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

function toast({ title, body, onClick, kind }) {
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
  setTimeout(remove, TOAST_MS);
}

function errorToast(message) {
  toast({ title: "Not done", body: message, kind: "error" });
}

// --- the socket ----------------------------------------------------------------------------------

const client = new ProtocolClient({
  url: () => socketUrl("/ws/agent/"),
  onOpen: () => {
    showConn("");
    send({ type: "ping" }); // its pong gives the server's clock at once
  },
  onFrame,
  onClose: onSocketClosed,
});

const send = (frame) => client.send(frame);
const request = (frame, handlers) => client.request(frame, handlers);

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

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      onHello(frame);
      break;
    // message.new, message.ack, resume.done and refused sends: handled by the chat's thread (protocol.js).
    case "typing":
      onTyping(frame);
      break;
    case "read": {
      const chat = state.chats.get(frame.conversation_id);
      if (chat && frame.side === "visitor") {
        chat.visitorReadSeq = Math.max(chat.visitorReadSeq, frame.seq);
        refreshSeen(chat);
      }
      break;
    }
    case "conversation.updated": {
      const chat = state.chats.get(frame.conversation.id);
      if (chat) updateChat(chat, frame.conversation);
      break;
    }
    case "conversation.assigned":
      onAssigned(frame.conversation);
      break;
    case "offer.new":
      addOffer(frame.offer, { alert: true });
      break;
    case "offer.withdrawn":
      removeOffer(frame.conversation_id);
      if (frame.reason === "taken") toast({ title: "Taken by a colleague", body: "That chat was answered." });
      break;
    case "waiting.added":
      state.waiting.set(frame.item.conversation_id, frame.item);
      renderWaiting();
      break;
    case "waiting.preview":
      onWaitingPreview(frame);
      break;
    case "waiting.removed":
      state.waiting.delete(frame.conversation_id);
      renderWaiting();
      break;
    case "agent.presence":
      if (frame.user_id === state.me.user_id) setPresence(frame.presence);
      break;
    case "template.updated":
      setTemplates([...state.templates.filter((t) => t.id !== frame.template.id), frame.template]);
      break;
    case "template.deleted":
      setTemplates(state.templates.filter((t) => t.id !== frame.template_id));
      break;
    case "dispositions.updated":
      state.dispositions = frame.dispositions || [];
      for (const chat of state.chats.values()) fillDispositions(chat);
      break;
    case "pong":
      if (frame.server_time) state.serverOffsetMs = Date.parse(frame.server_time) - Date.now();
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // `ok`, and types of later protocol versions
  }
}

function onHello(frame) {
  state.me = frame.me;
  state.limits = frame.limits || state.limits;
  state.dispositions = frame.dispositions || [];
  setTemplates(frame.templates || []);
  setPresence(frame.me.presence);
  ui.presence.disabled = false;

  const current = new Set();
  for (const conversation of frame.conversations || []) {
    current.add(conversation.id);
    const chat = state.chats.get(conversation.id) || createChat(conversation);
    updateChat(chat, conversation);
    fillDispositions(chat);
    resume(chat);
  }
  // Chats on screen that the server no longer lists (closed while we were away) are resumed too:
  // the replay carries their closing notice.
  for (const chat of state.chats.values()) {
    if (!current.has(chat.id) && chat.conv.status !== "closed") resume(chat);
    fillDispositions(chat);
  }

  for (const conversationId of [...state.offers.keys()]) removeOffer(conversationId);
  for (const offer of frame.offers || []) addOffer(offer, { alert: false });

  state.waiting.clear();
  for (const item of frame.waiting || []) state.waiting.set(item.conversation_id, item);
  renderWaiting();
  renderHome();
}

/** Error frames neither a thread (a refused send) nor a request's `fail` took. */
function onError(frame) {
  if (frame.message) errorToast(frame.message);
}

// --- presence ------------------------------------------------------------------------------------

function setPresence(presence) {
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

// --- offers (top-right) and the waiting list -----------------------------------------------------------

const IDENTITY_KINDS = { email: "Email", phone: "Phone", whatsapp: "WhatsApp" };

/** Addresses a person can use; the web visitor id is an internal handle, not shown. */
function addresses(contact) {
  return ((contact && contact.identities) || []).filter((identity) => identity.kind in IDENTITY_KINDS);
}

function identityLine(contact) {
  return addresses(contact).map((identity) => identity.value).join(" · ");
}

function addOffer(offer, { alert }) {
  removeOffer(offer.conversation_id);
  const receivedAt = Date.now();
  const name = h("a", {
    cls: "cc-offer-name",
    text: contactName(offer.contact),
    attrs: { href: contactUrl(offer.contact.id), target: "_blank", rel: "noopener" },
  });
  const identity = identityLine(offer.contact);
  // Filled later by `waiting.preview` when the chat was offered before the visitor wrote anything.
  const preview = h("p", { cls: "cc-offer-details cc-offer-preview" });
  setOfferPreview(preview, offer.preview);
  const accept = h("button", { cls: "cc-btn cc-btn-ok", text: "Accept", attrs: { type: "button" } });
  const reject = h("button", { cls: "cc-btn cc-btn-reject", text: "Reject", attrs: { type: "button" } });
  const actions = h("div", { cls: "cc-offer-actions" }, [accept, reject]);
  const externalUrl = externalUrlOf(offer.widget);
  if (externalUrl) {
    const external = h("button", { cls: "cc-btn cc-btn-external", text: "Open page", attrs: { type: "button" } });
    external.title = externalUrl;
    external.addEventListener("click", () => window.open(externalUrl, "_blank", "noopener"));
    actions.appendChild(external);
  }
  const el = h("article", { cls: "cc-offer", attrs: { "aria-label": `Incoming chat from ${contactName(offer.contact)}` } }, [
    h("p", { cls: "cc-offer-kicker", text: offer.started_offline ? "Offline message" : "Incoming chat" }),
    name,
    identity ? h("p", { cls: "cc-offer-details", text: identity }) : null,
    preview,
    h("dl", { cls: "cc-offer-times" }, [
      h("div", {}, [h("dt", { text: "Queue" }), h("dd", { text: offer.queue ? offer.queue.name : "—" })]),
      h("div", {}, [h("dt", { text: "Waiting" }), h("dd", {}, [counter({ since: offer.waiting_since })])]),
      h("div", {}, [h("dt", { text: "Notified" }), h("dd", {}, [counter({ local: receivedAt })])]),
    ]),
    actions,
  ]);
  accept.addEventListener("click", () => acceptChat(offer.conversation_id, [accept, reject]));
  reject.addEventListener("click", () => {
    reject.disabled = true;
    request(
      { type: "offer.reject", conversation_id: offer.conversation_id },
      {
        ok: () => removeOffer(offer.conversation_id),
        fail: (error) => {
          reject.disabled = false;
          errorToast(error.message);
        },
      },
    );
  });
  state.offers.set(offer.conversation_id, { offer, el, preview });
  ui.offers.appendChild(el);
  updateTitle();
  if (alert) beep(2);
}

function setOfferPreview(node, preview) {
  node.textContent = preview ? `“${preview}”` : "";
  node.hidden = !preview;
}

/** The first visitor message of a waiting chat, arrived after its offer or waiting item was made. */
function onWaitingPreview(frame) {
  const entry = state.offers.get(frame.conversation_id);
  if (entry && !entry.offer.preview) {
    entry.offer.preview = frame.preview;
    setOfferPreview(entry.preview, frame.preview);
  }
  const item = state.waiting.get(frame.conversation_id);
  if (item && !item.preview) {
    item.preview = frame.preview;
    renderWaiting();
  }
}

function removeOffer(conversationId) {
  const entry = state.offers.get(conversationId);
  if (!entry) return;
  entry.el.remove();
  state.offers.delete(conversationId);
  updateTitle();
}

function acceptChat(conversationId, buttons = []) {
  for (const button of buttons) button.disabled = true;
  state.focusOnAssign.add(conversationId);
  request(
    { type: "conversation.accept", conversation_id: conversationId },
    {
      ok: () => removeOffer(conversationId),
      fail: (error) => {
        state.focusOnAssign.delete(conversationId);
        for (const button of buttons) button.disabled = false;
        if (error.code === "already_taken" || error.code === "not_waiting") {
          removeOffer(conversationId);
          state.waiting.delete(conversationId);
          renderWaiting();
        }
        errorToast(error.message);
      },
    },
  );
}

function waitingItemNode(item) {
  const accept = h("button", { cls: "cc-btn cc-btn-ok cc-btn-sm", text: "Accept", attrs: { type: "button" } });
  accept.addEventListener("click", () => acceptChat(item.conversation_id, [accept]));
  const sub = [item.queue ? item.queue.name : "", item.started_offline ? "offline message" : ""].filter(Boolean);
  const waited = h("span", {}, [document.createTextNode("waiting "), counter({ since: item.waiting_since })]);
  return h("li", { cls: "cc-waiting-item", attrs: { "data-conversation": String(item.conversation_id) } }, [
    h("div", { cls: "cc-item-main" }, [
      h("div", { cls: "cc-item-title", text: item.contact_name || "Visitor" }),
      h("div", { cls: "cc-item-sub" }, [document.createTextNode(sub.length ? `${sub.join(" · ")} · ` : ""), waited]),
      item.preview ? h("div", { cls: "cc-item-sub", text: `“${item.preview}”` }) : null,
    ]),
    accept,
  ]);
}

function renderWaiting() {
  const items = [...state.waiting.values()].sort((a, b) => Date.parse(a.waiting_since) - Date.parse(b.waiting_since));
  ui.waitingCount.textContent = String(items.length);
  ui.waitingBtn.classList.toggle("has-waiting", items.length > 0);
  ui.waitingList.replaceChildren(...items.map(waitingItemNode));
  ui.homeWaiting.replaceChildren(...items.map(waitingItemNode));
  ui.waitingEmpty.hidden = items.length > 0;
  ui.homeWaitingEmpty.hidden = items.length > 0;
}

function toggleWaitingPanel(open) {
  ui.waitingPanel.hidden = !open;
  ui.waitingBtn.setAttribute("aria-expanded", String(open));
}

ui.waitingBtn.addEventListener("click", (event) => {
  event.stopPropagation();
  toggleWaitingPanel(ui.waitingPanel.hidden);
});

// Clicking elsewhere closes the open popovers (waiting list, template and emoji menus).
document.addEventListener("click", (event) => {
  if (!ui.waitingPanel.hidden && !ui.waitingPanel.contains(event.target)) toggleWaitingPanel(false);
  for (const chat of state.chats.values()) {
    if (!chat.els.composer.contains(event.target)) closeMenus(chat);
  }
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  toggleWaitingPanel(false);
  for (const chat of state.chats.values()) closeMenus(chat);
});

// --- tabs and panes ----------------------------------------------------------------------------------

function activate(paneId) {
  if (paneId !== state.active) state.previous = state.active;
  state.active = paneId;
  ui.homeTab.classList.toggle("is-active", paneId === "home");
  ui.homeTab.setAttribute("aria-selected", String(paneId === "home"));
  ui.homePane.classList.toggle("is-active", paneId === "home");
  for (const chat of state.chats.values()) {
    const on = chat.id === paneId;
    chat.els.tab.classList.toggle("is-active", on);
    chat.els.tab.setAttribute("aria-selected", String(on));
    chat.els.pane.classList.toggle("is-active", on);
    if (on) {
      chat.unread = false;
      chat.els.tab.classList.remove("is-flashing", "is-unread");
      scrollToEnd(chat);
      markRead(chat);
      chat.els.text.focus();
    }
  }
  updateTitle();
}

ui.homeTab.addEventListener("click", () => activate("home"));

// --- one chat --------------------------------------------------------------------------------------

function createChat(conversation) {
  const pane = ui.chatTemplate.content.firstElementChild.cloneNode(true);
  const q = (cls) => pane.querySelector(`.${cls}`);
  const tab = h("button", { cls: "cc-tab", attrs: { type: "button", role: "tab", "aria-selected": "false" } }, [
    h("span", { cls: "cc-tab-dot", attrs: { "aria-hidden": "true" } }),
    h("span", { cls: "cc-tab-label" }),
  ]);
  const chat = {
    id: conversation.id,
    conv: conversation,
    thread: null, // its messages and sends (static/js/protocol.js)
    visitorReadSeq: 0,
    unread: false,
    mode: "reply",
    unfilled: new Set(), // placeholders a template left in the composer without a value
    closing: false, // this agent pressed Close: the tab goes once the server confirms
    olderBefore: null, // id of the oldest earlier conversation shown ("load older" pages from it)
    olderExhausted: false,
    readSent: 0,
    typingSentAt: 0,
    typingIdleTimer: null,
    peerTypingTimer: null,
    readTimer: null,
    els: {
      tab,
      pane,
      contact: q("js-contact"),
      sub: q("js-sub"),
      important: q("js-important"),
      external: q("js-external"),
      disposition: q("js-disposition"),
      close: q("js-close"),
      scroll: q("js-scroll"),
      olderWrap: q("js-older-wrap"),
      older: q("js-older"),
      log: q("js-log"),
      typing: q("js-typing"),
      composer: q("js-composer"),
      pending: q("js-pending"),
      hint: q("js-hint"),
      text: q("js-text"),
      templatesBtn: q("js-templates-btn"),
      templatesMenu: q("js-templates-menu"),
      emojiBtn: q("js-emoji-btn"),
      emojiMenu: q("js-emoji-menu"),
      emojiGrid: q("js-emoji-grid"),
      attach: q("js-attach"),
      file: q("js-file"),
      send: q("js-send"),
      ended: q("js-ended"),
      customer: q("js-customer"),
      surveySection: q("js-survey-section"),
      survey: q("js-survey"),
      info: q("js-info"),
    },
  };
  pane.id = `cc-pane-${chat.id}`;
  tab.id = `cc-tab-${chat.id}`;
  tab.setAttribute("aria-controls", pane.id);
  pane.setAttribute("aria-labelledby", tab.id);
  // A second click on the open chat's tab returns to the previous screen.
  tab.addEventListener("click", () => activate(state.active === chat.id ? state.previous : chat.id));
  chat.thread = client.thread(chat.id, {
    log: chat.els.log,
    scroller: chat.els.scroll,
    render: (message, options) => messageNode(chat, message, options),
    onMessage: (message, li, options) => onMessageNew(chat, message, li, options),
    onAck: (el, frame) => setMeta(el, frame.created_at, delivered(chat, el)),
    onFailed: (el, frame) => {
      setMeta(el, null, "failed");
      el.title = frame.message || "";
      errorToast(frame.message);
    },
    onResumed: () => markRead(chat),
  });
  wireComposer(chat);
  wireControls(chat);
  ui.tabs.appendChild(tab);
  ui.main.appendChild(pane);
  state.chats.set(chat.id, chat);
  fillDispositions(chat);
  return chat;
}

function resume(chat) {
  chat.thread.resume({
    fail: (error) => {
      // No longer readable (closed and handed on while we were disconnected): show it as ended.
      if (error.code === "not_found" && state.chats.has(chat.id)) updateChat(chat, { status: "closed", access: "read" });
      else if (error.code !== "disconnected") errorToast(error.message); // the reconnect resumes again
    },
  });
}

function removeChat(chat) {
  send({ type: "unsubscribe", conversation_id: chat.id });
  client.forget(chat.id);
  chat.els.tab.remove();
  chat.els.pane.remove();
  state.chats.delete(chat.id);
  if (state.active === chat.id) activate(state.previous !== chat.id && state.chats.has(state.previous) ? state.previous : "home");
  if (state.previous === chat.id) state.previous = "home";
  renderHome();
  updateTitle();
}

function onAssigned(conversation) {
  const chat = state.chats.get(conversation.id) || createChat(conversation);
  updateChat(chat, conversation);
  resume(chat);
  removeOffer(conversation.id);
  state.waiting.delete(conversation.id);
  renderWaiting();
  if (state.focusOnAssign.delete(conversation.id)) activate(chat.id);
  renderHome();
}

/** Applies a conversation object (agent conversation or conversation state: fields it lacks are kept).
 * One older than the state on screen is dropped: with two server processes, an update can overtake an
 * earlier one on its way here, and the version says which came last (protocol §4). */
function updateChat(chat, conversation) {
  if (isStale(chat.conv, conversation)) return;
  const wasClosed = chat.conv.status === "closed";
  chat.conv = { ...chat.conv, ...conversation };
  const conv = chat.conv;
  const name = contactName(conv.contact);
  const { els } = chat;
  els.tab.querySelector(".cc-tab-label").textContent = name;
  els.tab.title = name;
  els.tab.classList.toggle("is-important", Boolean(conv.important));
  els.contact.textContent = name;
  if (conv.contact) els.contact.href = contactUrl(conv.contact.id);
  const sub = [conv.queue ? `Queue: ${conv.queue.name}` : "", conv.widget ? conv.widget.name : "", `#${conv.id}`];
  els.sub.textContent = sub.filter(Boolean).join(" · ");
  els.important.setAttribute("aria-pressed", String(Boolean(conv.important)));
  els.important.classList.toggle("is-on", Boolean(conv.important));
  els.important.textContent = conv.important ? "★" : "☆";
  els.important.title = conv.important ? "Marked as important (click to unmark)" : "Mark as important";
  const externalUrl = externalUrlOf(conv.widget);
  els.external.hidden = !externalUrl;
  els.external.title = externalUrl || "";
  els.disposition.value = conv.disposition_id ? String(conv.disposition_id) : "";
  els.olderWrap.hidden = !conv.has_history || chat.olderExhausted;
  if (conv.visitor_read_seq) chat.visitorReadSeq = Math.max(chat.visitorReadSeq, conv.visitor_read_seq);
  renderSide(chat);
  refreshCloseButton(chat);
  refreshSeen(chat);

  const closed = conv.status === "closed";
  els.composer.hidden = closed || conv.access === "read";
  els.ended.hidden = !closed;
  if (closed && !wasClosed) {
    if (chat.closing) {
      // This agent closed it: the tab has done its job.
      removeChat(chat);
      return;
    }
    els.ended.textContent = "This chat has ended. Choose a status, then close the tab.";
    hidePeerTyping(chat);
  }
  renderHome();
}

function renderSide(chat) {
  const conv = chat.conv;
  const { customer, survey, surveySection, info } = chat.els;
  const row = (label, value) => [h("dt", { text: label }), h("dd", {}, [value])];
  const contactRows = [];
  const link = h("a", {
    text: contactName(conv.contact),
    attrs: { href: conv.contact ? contactUrl(conv.contact.id) : "#", target: "_blank", rel: "noopener" },
  });
  contactRows.push(...row("Name", link));
  for (const identity of addresses(conv.contact)) {
    const badge = h("span", {
      cls: `cc-badge ${identity.verified ? "cc-badge-ok" : "cc-badge-warn"}`,
      text: identity.verified ? "Verified" : "Unverified",
      attrs: { title: identity.verified ? "Proved by the customer" : "Typed by the visitor" },
    });
    const value = h("span", {}, [document.createTextNode(`${identity.value} `), badge]);
    contactRows.push(...row(IDENTITY_KINDS[identity.kind], value));
  }
  customer.replaceChildren(...contactRows);
  const answers = (conv.survey || []).filter((answer) => answer.value);
  surveySection.hidden = answers.length === 0;
  survey.replaceChildren(...answers.flatMap((answer) => row(answer.label, document.createTextNode(answer.value))));
  const infoRows = [];
  if (conv.queue) infoRows.push(...row("Queue", document.createTextNode(conv.queue.name)));
  if (conv.widget) infoRows.push(...row("Widget", document.createTextNode(conv.widget.name)));
  if (conv.created_at) infoRows.push(...row("Started", document.createTextNode(dateTime(conv.created_at))));
  if (conv.answered_at) infoRows.push(...row("Answered", document.createTextNode(dateTime(conv.answered_at))));
  if (conv.started_offline) infoRows.push(...row("Started as", document.createTextNode("an offline message")));
  infoRows.push(...row("Status", document.createTextNode(conv.status)));
  info.replaceChildren(...infoRows);
}

/** The status picker from the tenant's active dispositions (hello, then `dispositions.updated`). A status
 * already chosen that is no longer offered stays shown, so the chat does not look undecided. */
function fillDispositions(chat) {
  const select = chat.els.disposition;
  const current = chat.conv.disposition_id ? String(chat.conv.disposition_id) : "";
  const shown = current ? select.querySelector(`option[value="${CSS.escape(current)}"]`) : null;
  const shownName = shown ? shown.textContent : "";
  select.replaceChildren(h("option", { text: "Choose a status…", attrs: { value: "" } }));
  for (const disposition of state.dispositions) {
    select.appendChild(h("option", { text: disposition.name, attrs: { value: String(disposition.id) } }));
  }
  if (current && !state.dispositions.some((d) => String(d.id) === current) && shownName) {
    const kept = h("option", { text: shownName, attrs: { value: current } });
    kept.disabled = true;
    select.appendChild(kept);
  }
  select.value = current;
  refreshCloseButton(chat);
}

function refreshCloseButton(chat) {
  const { close, disposition } = chat.els;
  const chosen = Boolean(disposition.value);
  const closed = chat.conv.status === "closed";
  close.disabled = !chosen || chat.conv.access === "read";
  close.textContent = closed ? "Close tab" : "Close chat";
  close.title = chosen ? (closed ? "Remove this tab" : "End the chat: the visitor is told") : "Choose a status first";
  disposition.classList.toggle("is-missing", !chosen);
}

function wireControls(chat) {
  const { els } = chat;
  els.important.addEventListener("click", () => {
    const important = !chat.conv.important;
    request(
      { type: "conversation.important", conversation_id: chat.id, important },
      { ok: () => updateChat(chat, { important }), fail: (error) => errorToast(error.message) },
    );
  });
  els.external.addEventListener("click", () => {
    const url = externalUrlOf(chat.conv.widget);
    if (url) window.open(url, "_blank", "noopener");
  });
  els.disposition.addEventListener("change", () => {
    const value = els.disposition.value;
    refreshCloseButton(chat);
    request(
      { type: "conversation.disposition", conversation_id: chat.id, disposition_id: value ? Number(value) : null },
      {
        ok: () => updateChat(chat, { disposition_id: value ? Number(value) : null }),
        fail: (error) => {
          els.disposition.value = chat.conv.disposition_id ? String(chat.conv.disposition_id) : "";
          refreshCloseButton(chat);
          errorToast(error.message);
        },
      },
    );
  });
  els.close.addEventListener("click", () => {
    if (chat.conv.status === "closed") {
      removeChat(chat);
      return;
    }
    els.close.disabled = true;
    chat.closing = true;
    request(
      { type: "conversation.close", conversation_id: chat.id, disposition_id: Number(els.disposition.value) },
      {
        fail: (error) => {
          chat.closing = false;
          refreshCloseButton(chat);
          errorToast(error.message);
        },
      },
    );
  });
  els.older.addEventListener("click", () => loadOlder(chat));
}

// --- messages --------------------------------------------------------------------------------------

function scrollToEnd(chat) {
  scrollLogToEnd(chat.els.scroll);
}

function eventText(chat, message) {
  const data = message.event_data || {};
  if (message.event === "agent.joined" && data.agent_name) return [data.agent_name, " joined the chat"];
  if (message.event === "conversation.closed") {
    if (data.by === "visitor") return [contactName(chat.conv.contact), " ended the chat"];
    if (data.agent_name) return [data.agent_name, " closed the chat"];
  }
  return [null, message.body || message.event];
}

function attachmentNode(attachment, localPreview) {
  if (attachment.is_image || localPreview) {
    const img = h("img", { attrs: { alt: attachment.filename, loading: "lazy" } });
    img.src = localPreview || attachment.url;
    const link = h("a", { cls: "cc-file", attrs: { target: "_blank", rel: "noopener" } }, [img]);
    if (attachment.url) link.href = attachment.url;
    return h("div", { cls: "cc-bubble is-file" }, [link]);
  }
  const chip = h("a", {
    cls: "cc-file-chip",
    text: `${attachment.filename} (${formatBytes(attachment.size || 0)})`,
    attrs: { rel: "noopener" },
  });
  if (attachment.url) {
    chip.href = attachment.url;
    chip.setAttribute("download", attachment.filename);
  }
  return h("div", { cls: "cc-bubble is-file" }, [chip]);
}

function messageNode(chat, message, { status, history } = {}) {
  if (message.sender === "system") {
    const [strong, rest] = eventText(chat, message);
    const li = h("li", { cls: "cc-event" });
    if (strong) li.appendChild(h("strong", { text: strong }));
    li.appendChild(document.createTextNode(rest));
    li.appendChild(h("span", { cls: "cc-muted", text: ` · ${clock(message.created_at)}` }));
    return li;
  }
  const fromVisitor = message.sender === "visitor";
  const mine = !fromVisitor && message.sender_user && message.sender_user.id === state.me.user_id;
  let cls = `cc-msg ${fromVisitor ? "is-visitor" : "is-agent"}`;
  if (message.private) cls += " is-note";
  if (history) cls += " is-history";
  const li = h("li", { cls });
  let who = contactName(chat.conv.contact);
  if (!fromVisitor) who = mine ? "You" : (message.sender_user && message.sender_user.name) || "Agent";
  li.appendChild(h("span", { cls: "cc-msg-who", text: who }));
  if (message.body) li.appendChild(h("div", { cls: "cc-bubble", text: message.body }));
  for (const attachment of message.attachments || []) {
    li.appendChild(attachmentNode(attachment, message.localPreviews && message.localPreviews[attachment.id]));
  }
  li.appendChild(h("span", { cls: "cc-msg-meta" }));
  setMeta(li, message.created_at, mine ? status : null);
  return li;
}

function setMeta(li, createdAt, status) {
  const meta = li.querySelector(".cc-msg-meta");
  if (!meta) return;
  if (createdAt) li.dataset.time = createdAt;
  const label = { sending: "Sending…", sent: "Sent", seen: "Seen", saved: "Saved", failed: "Not sent" }[status] || "";
  meta.textContent = label ? `${clock(li.dataset.time)} · ${label}` : clock(li.dataset.time);
  if (status) li.dataset.status = status;
  li.classList.toggle("is-failed", status === "failed");
}

function refreshSeen(chat) {
  for (const li of chat.els.log.querySelectorAll("li[data-status][data-seq]")) {
    if (li.dataset.status === "failed") continue;
    const status = delivered(chat, li);
    if (li.dataset.status !== status) setMeta(li, null, status);
  }
}

/** The receipt of an own stored message: a note is only saved (the visitor never gets it). */
function delivered(chat, li) {
  if (li.classList.contains("is-note")) return "saved";
  return Number(li.dataset.seq) <= chat.visitorReadSeq ? "seen" : "sent";
}

/** After the thread placed a new message (its own copy of a pending one included). */
function onMessageNew(chat, message, li, { replay, stick }) {
  if (li.dataset.status) setMeta(li, null, delivered(chat, li));
  if (message.sender === "visitor") hidePeerTyping(chat);
  if (message.event === "conversation.closed" && chat.conv.status !== "closed") {
    updateChat(chat, { status: "closed" });
    if (!state.chats.has(chat.id)) return;
  }
  if (stick || !replay) scrollToEnd(chat);
  if (!replay && message.sender === "visitor") notifyNewMessage(chat, message);
  markRead(chat);
  renderHome();
}

/** A visitor's message in a chat the agent is not looking at: flash its tab, a toast, a beep. */
function notifyNewMessage(chat, message) {
  const looking = state.active === chat.id && document.visibilityState === "visible";
  if (looking) return;
  chat.unread = true;
  chat.els.tab.classList.add("is-flashing", "is-unread");
  const preview = message.body || ((message.attachments || [])[0] || {}).filename || "";
  if (document.visibilityState === "visible") {
    toast({ title: `New message from ${contactName(chat.conv.contact)}`, body: preview, onClick: () => activate(chat.id) });
  }
  beep(1);
  updateTitle();
}

function markRead(chat) {
  clearTimeout(chat.readTimer);
  // Batched: a replay of many messages sends one read marker.
  chat.readTimer = setTimeout(() => {
    const visible = state.active === chat.id && document.visibilityState === "visible";
    const { lastSeq, resumed } = chat.thread;
    if (visible && resumed && chat.conv.status !== "closed" && lastSeq > chat.readSent) {
      chat.readSent = lastSeq;
      send({ type: "read", conversation_id: chat.id, seq: lastSeq });
    }
  }, 250);
}

async function loadOlder(chat) {
  const { older, olderWrap, log } = chat.els;
  older.disabled = true;
  try {
    const query = chat.olderBefore ? `&before=${encodeURIComponent(chat.olderBefore)}` : "";
    const data = await api(`/conversations/${chat.id}/history?limit=1${query}`);
    const scroller = chat.els.scroll;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    for (const past of data.conversations) {
      const nodes = [h("li", { cls: "cc-divider" }, [h("span", { text: `Earlier conversation · ${dateTime(past.created_at)}` })])];
      for (const message of past.messages) nodes.push(messageNode(chat, message, { history: true }));
      nodes.push(h("li", { cls: "cc-divider" }, [h("span", { text: "End of earlier conversation" })]));
      // Newest first from the server: each older conversation goes above what is shown.
      log.prepend(...nodes);
      chat.olderBefore = past.id;
    }
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    chat.olderExhausted = !data.has_more;
    olderWrap.hidden = chat.olderExhausted;
  } catch (error) {
    errorToast(error.message);
  } finally {
    older.disabled = false;
  }
}

// --- typing ------------------------------------------------------------------------------------------

function onTyping(frame) {
  const chat = state.chats.get(frame.conversation_id);
  if (!chat) return;
  if (frame.side === "agent" && frame.user_id === state.me.user_id) return;
  if (!frame.is_typing) {
    hidePeerTyping(chat);
    return;
  }
  const name = frame.side === "visitor" ? contactName(chat.conv.contact) : frame.name || "A colleague";
  chat.els.typing.textContent = frame.private ? `${name} is writing a private note…` : `${name} is typing…`;
  clearTimeout(chat.peerTypingTimer);
  // A lost "stopped typing" frame must not leave the indicator on for ever.
  chat.peerTypingTimer = setTimeout(() => hidePeerTyping(chat), 8000);
}

function hidePeerTyping(chat) {
  clearTimeout(chat.peerTypingTimer);
  chat.els.typing.textContent = "";
}

function stopTyping(chat) {
  clearTimeout(chat.typingIdleTimer);
  if (chat.typingSentAt) {
    chat.typingSentAt = 0;
    send({ type: "typing", conversation_id: chat.id, is_typing: false, private: chat.mode === "note" });
  }
}

// --- composing ----------------------------------------------------------------------------------------

function sendMessage(chat, body, attachments = [], localPreviews = {}) {
  const isNote = chat.mode === "note";
  const el = messageNode(
    chat,
    {
      sender: "agent",
      sender_user: { id: state.me.user_id, name: state.me.name },
      private: isNote,
      body,
      attachments,
      localPreviews,
      created_at: new Date().toISOString(),
    },
    { status: "sending" },
  );
  const fields = { conversation_id: chat.id, body, private: isNote, attachment_ids: attachments.map((a) => a.id) };
  chat.thread.send(fields, el); // sent once the chat is resumed
}

function submitText(chat) {
  const { text } = chat.els;
  const body = text.value.trim();
  if (!body) return;
  if (chat.mode !== "note" && refreshUnfilled(chat, { refused: true }).length) {
    selectUnfilled(chat);
    return;
  }
  if (body.length > state.limits.max_chars) {
    errorToast(`Messages can be at most ${state.limits.max_chars} characters.`);
    return;
  }
  text.value = "";
  chat.unfilled.clear();
  refreshUnfilled(chat);
  stopTyping(chat);
  sendMessage(chat, body);
  text.focus();
}

function insertAtCursor(textarea, snippet) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? textarea.value.length;
  textarea.value = textarea.value.slice(0, start) + snippet + textarea.value.slice(end);
  textarea.selectionStart = textarea.selectionEnd = start + snippet.length;
  textarea.focus();
  textarea.dispatchEvent(new Event("input"));
}

// `{visitor_email}`, or `{visitor_name|there}` with a fallback: the pattern of agents/services.py.
const PLACEHOLDER = /\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|([^{}|\n]*))?\}/g;

/** Fills a template's placeholders as agents/services.template_render does: an empty value takes the
 * fallback; without one the placeholder stays as typed and is listed in `missing`, for the agent to fill
 * in before sending (never "follow up at  within one business day"). */
function renderTemplate(chat, body) {
  const conv = chat.conv;
  const identities = (conv.contact && conv.contact.identities) || [];
  const answer = (kind) => ((conv.survey || []).find((a) => a.key === kind) || {}).value || "";
  const email = (identities.find((identity) => identity.kind === "email") || {}).value || answer("email");
  const values = {
    visitor_name: (conv.contact && conv.contact.name) || answer("name"),
    visitor_email: email,
    agent_name: state.me.name,
    widget_name: (conv.widget && conv.widget.name) || "",
  };
  const missing = [];
  const text = body.replace(PLACEHOLDER, (whole, key, fallback) => {
    const value = (Object.hasOwn(values, key) && String(values[key] || "").trim()) || "";
    if (value) return value;
    if (fallback !== undefined) return fallback.trim();
    if (!missing.includes(whole)) missing.push(whole);
    return whole;
  });
  return { text, missing };
}

function setTemplates(templates) {
  state.templates = [...templates].sort((a, b) => a.name.localeCompare(b.name));
  for (const chat of state.chats.values()) {
    if (!chat.els.templatesMenu.hidden) fillTemplatesMenu(chat);
  }
}

/** Placeholders a template left unfilled that are still in the composer (replies wait until they are gone). */
function unfilledIn(chat) {
  const value = chat.els.text.value;
  return [...chat.unfilled].filter((token) => value.includes(token));
}

function refreshUnfilled(chat, { refused = false } = {}) {
  const left = unfilledIn(chat);
  chat.unfilled = new Set(left);
  const { hint, composer } = chat.els;
  hint.hidden = left.length === 0;
  hint.classList.toggle("is-error", refused && left.length > 0);
  composer.classList.toggle("has-unfilled", left.length > 0);
  if (left.length) {
    const noun = left.length === 1 ? "it" : "them";
    hint.textContent = `This chat has no value for ${left.join(", ")}: replace ${noun} before sending.`;
  }
  return left;
}

/** Selects the first unfilled placeholder in the composer, so typing replaces it. */
function selectUnfilled(chat) {
  const { text } = chat.els;
  const [first] = unfilledIn(chat);
  if (!first) return;
  const at = text.value.indexOf(first);
  text.focus();
  text.setSelectionRange(at, at + first.length);
}

function insertTemplate(chat, template) {
  const { text, missing } = renderTemplate(chat, template.body);
  insertAtCursor(chat.els.text, text);
  for (const token of missing) chat.unfilled.add(token);
  refreshUnfilled(chat);
  selectUnfilled(chat);
}

function closeMenus(chat) {
  for (const [btn, menu] of [
    [chat.els.templatesBtn, chat.els.templatesMenu],
    [chat.els.emojiBtn, chat.els.emojiMenu],
  ]) {
    menu.hidden = true;
    btn.setAttribute("aria-expanded", "false");
  }
}

function toggleMenu(chat, btn, menu) {
  const open = menu.hidden;
  closeMenus(chat);
  menu.hidden = !open;
  btn.setAttribute("aria-expanded", String(open));
  if (open) menu.querySelector("button")?.focus();
}

function fillTemplatesMenu(chat) {
  const menu = chat.els.templatesMenu;
  if (!state.templates.length) {
    menu.replaceChildren(h("p", { cls: "cc-empty", text: "No templates yet. An admin can add them in Settings." }));
    return;
  }
  menu.replaceChildren(
    ...state.templates.map((template) => {
      const { text, missing } = renderTemplate(chat, template.body);
      const item = h("button", { cls: "cc-menu-item", attrs: { type: "button", role: "menuitem" } }, [
        document.createTextNode(template.name),
        h("small", { text }),
        missing.length ? h("small", { cls: "cc-menu-missing", text: `No value for ${missing.join(", ")}` }) : null,
      ]);
      item.title = text; // the whole text it puts in the composer
      item.addEventListener("click", () => {
        closeMenus(chat);
        insertTemplate(chat, template);
      });
      return item;
    }),
  );
}

function wireComposer(chat) {
  const { els } = chat;
  els.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitText(chat);
    }
  });
  els.text.addEventListener("input", () => {
    if (chat.unfilled.size) refreshUnfilled(chat);
    if (!els.text.value.trim()) {
      stopTyping(chat);
      return;
    }
    const now = Date.now();
    if (now - chat.typingSentAt > TYPING_REPEAT_MS) {
      chat.typingSentAt = now;
      send({ type: "typing", conversation_id: chat.id, is_typing: true, private: chat.mode === "note" });
    }
    clearTimeout(chat.typingIdleTimer);
    chat.typingIdleTimer = setTimeout(() => stopTyping(chat), TYPING_IDLE_MS);
  });
  els.send.addEventListener("click", () => submitText(chat));

  for (const button of els.composer.querySelectorAll(".js-mode")) {
    button.addEventListener("click", () => {
      stopTyping(chat);
      chat.mode = button.dataset.mode;
      for (const other of els.composer.querySelectorAll(".js-mode")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      els.composer.classList.toggle("is-note-mode", chat.mode === "note");
      els.text.placeholder =
        chat.mode === "note"
          ? "Write a private note: only agents see it"
          : "Write a reply… Enter sends, Shift+Enter adds a line";
      els.send.textContent = chat.mode === "note" ? "Add note" : "Send";
      els.text.focus();
    });
  }

  els.templatesBtn.addEventListener("click", () => {
    fillTemplatesMenu(chat);
    toggleMenu(chat, els.templatesBtn, els.templatesMenu);
  });
  els.emojiGrid.replaceChildren(
    ...EMOJI.map((emoji) => {
      const button = h("button", { text: emoji, attrs: { type: "button", role: "menuitem", "aria-label": emoji } });
      button.addEventListener("click", () => {
        closeMenus(chat);
        insertAtCursor(els.text, emoji);
      });
      return button;
    }),
  );
  els.emojiBtn.addEventListener("click", () => toggleMenu(chat, els.emojiBtn, els.emojiMenu));

  els.attach.addEventListener("click", () => els.file.click());
  els.file.addEventListener("change", () => {
    const files = [...els.file.files];
    els.file.value = "";
    uploadFiles(chat, files);
  });
  // The grey area around the composer is the drop zone.
  els.composer.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    els.composer.classList.add("is-dragging");
  });
  els.composer.addEventListener("dragleave", (event) => {
    if (!els.composer.contains(event.relatedTarget)) els.composer.classList.remove("is-dragging");
  });
  els.composer.addEventListener("drop", (event) => {
    event.preventDefault();
    els.composer.classList.remove("is-dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) uploadFiles(chat, [...event.dataTransfer.files]);
  });
}

async function uploadFiles(chat, files) {
  for (const file of files) {
    const chip = h("span", { cls: "cc-pending-item", text: `Uploading ${file.name}…` });
    chat.els.pending.appendChild(chip);
    const form = new FormData();
    form.append("file", file);
    try {
      const { attachment } = await api(`/conversations/${chat.id}/uploads`, { method: "POST", form });
      chip.remove();
      const previews = file.type.startsWith("image/") ? { [attachment.id]: URL.createObjectURL(file) } : {};
      sendMessage(chat, "", [attachment], previews);
    } catch (error) {
      chip.textContent = `${file.name}: ${error.message}`;
      chip.classList.add("is-error");
      setTimeout(() => chip.remove(), 6000);
    }
  }
}

// --- home --------------------------------------------------------------------------------------------

function renderHome() {
  const chats = [...state.chats.values()];
  ui.myChats.replaceChildren(
    ...chats.map((chat) => {
      const last = [...chat.thread.bySeq.entries()].sort((a, b) => b[0] - a[0])[0];
      const preview = last ? last[1].querySelector(".cc-bubble")?.textContent || "" : "";
      const item = h("li", { cls: "cc-list-item", attrs: { tabindex: "0", role: "button" } }, [
        h("div", { cls: "cc-item-main" }, [
          h("div", { cls: "cc-item-title", text: contactName(chat.conv.contact) }),
          h("div", { cls: "cc-item-sub", text: [chat.conv.status, preview].filter(Boolean).join(" · ") }),
        ]),
      ]);
      item.addEventListener("click", () => activate(chat.id));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter") activate(chat.id);
      });
      return item;
    }),
  );
  ui.myChatsEmpty.hidden = chats.length > 0;
}

setPresence(boot.presence);
renderWaiting();
renderHome();
activate("home");
client.connect();
