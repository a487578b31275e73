/*
 * Switchboard chat widget: the visitor's side of docs/protocol.md, running in the iframe page
 * /widget/<public_key>/ (same origin as the server, so the socket and the uploads need no CORS).
 *
 * Rules kept throughout:
 *   - every piece of text that comes from a person (messages, names, file names, survey answers,
 *     server messages) goes into the page through textContent, never as HTML;
 *   - an own message is shown at once as "Sending", becomes "Sent" when acked with a seq, and is
 *     resent with the same client_id after a reconnect until it is acked (the server dedupes);
 *   - the database is the truth: after every (re)connect the widget resumes from its highest seq.
 */
import { api as fetchJson } from "../js/http.js";
import { clock, formatBytes, h, scrollToEnd, uuid } from "../js/dom.js";
import { ProtocolClient, isStale, socketUrl } from "../js/protocol.js";

const boot = JSON.parse(document.getElementById("sb-boot").textContent);
const API = `/widget/api/${encodeURIComponent(boot.publicKey)}`;
const STORE_KEY = `sb-visitor:${boot.publicKey}`;
const MSG_SOURCE = "switchboard-widget";
// The embedding page, as checked by the server against the widget's allowed origins ("" when the
// page is opened directly or from an origin that is not allowed: then nothing is posted anywhere).
const PARENT = window.parent !== window ? boot.parentOrigin : "";
const TYPING_IDLE_MS = 3000;
const TYPING_REPEAT_MS = 2000;
const FORM_HEIGHT_MAX = 640;

const $ = (id) => document.getElementById(id);
const ui = {
  avatar: $("sb-avatar"),
  title: $("sb-title"),
  subtitle: $("sb-subtitle"),
  end: $("sb-end"),
  minimize: $("sb-minimize"),
  notice: $("sb-notice"),
  queue: $("sb-queue"),
  banner: $("sb-banner"),
  body: $("sb-body"),
  loading: $("sb-view-loading"),
  formView: $("sb-view-form"),
  intro: $("sb-intro"),
  form: $("sb-form"),
  fields: $("sb-fields"),
  formError: $("sb-form-error"),
  submit: $("sb-submit"),
  chatView: $("sb-view-chat"),
  log: $("sb-log"),
  typing: $("sb-typing"),
  composer: $("sb-composer"),
  pending: $("sb-pending"),
  attach: $("sb-attach"),
  file: $("sb-file"),
  text: $("sb-text"),
  send: $("sb-send"),
  ended: $("sb-ended"),
  endedText: $("sb-ended-text"),
  restart: $("sb-restart"),
  moved: $("sb-moved"),
  switchButton: $("sb-switch"),
  switchMenu: $("sb-switch-menu"),
  switchOptions: $("sb-switch-options"),
  switchCancel: $("sb-switch-cancel"),
  history: $("sb-history"),
};

// How a channel reads in a sentence ("continues by SMS", "by email").
const CHANNEL_WORDS = { sms: "SMS", whatsapp: "WhatsApp", email: "email" };

// Why no one can take a chat now (config `unavailable_reason`, protocol 1.10), in the visitor's words (text, or a
// function giving it when it depends on the config): above the
// offline form (`form`, null: the widget's own offline_message, written for exactly that case), in the header, and
// below a message left meanwhile. "unknown": the start found the chat could not be taken after the config said it
// could (the queue filled up, the last agent left); the message was kept all the same.
const UNAVAILABLE = {
  nobody_online: {
    form: null,
    subtitle: "No one is available right now",
    notice: "No one is available right now: we will reply here as soon as we can.",
  },
  all_busy: {
    form: "All our agents are busy right now. Leave a message and we will reply.",
    subtitle: "All our agents are busy",
    notice: "All our agents are busy: we will reply here as soon as we can.",
  },
  queue_full: {
    form: "All our agents are busy and the queue is full. Leave a message and we will reply.",
    subtitle: "All our agents are busy",
    notice: "All our agents are busy: we will reply here as soon as we can.",
  },
  // Outside the widget's business hours (protocol 1.11): the words say when the team is back, from `opens_at`.
  closed: {
    form: () => {
      const when = backWhen(state.opensAt);
      return when
        ? `We are closed right now and back ${when}. Leave a message and we will reply then.`
        : "We are closed right now. Leave a message and we will reply when we are back.";
    },
    subtitle: "We are closed right now",
    notice: () => {
      const when = backWhen(state.opensAt);
      return when ? `We are back ${when}: we will reply here then.` : "We will reply here when we are back.";
    },
  },
  unknown: {
    form: null,
    subtitle: "We will reply as soon as we can",
    notice: "No one could take your chat just now: we will reply here as soon as we can.",
  },
};
UNAVAILABLE.no_queue = UNAVAILABLE.nobody_online;
const NOBODY_ONLINE_FORM = "No one is available right now. Leave a message and we will reply.";

function unavailable() {
  const words = UNAVAILABLE[state.unavailableReason] || UNAVAILABLE.nobody_online;
  const text = (value) => (typeof value === "function" ? value() : value);
  return { form: text(words.form), subtitle: text(words.subtitle), notice: text(words.notice) };
}

/** When the team is back, in the visitor's own language and time zone: "today at 9:00 AM", "tomorrow at 09:00",
 * "on Monday at 09:00", or with the date when it is a week or more away; null when the server gave no time. */
function backWhen(iso) {
  const when = iso ? new Date(iso) : null;
  if (!when || Number.isNaN(when.getTime())) return null;
  const time = when.toLocaleTimeString(undefined, { hour: "numeric", minute: "2-digit" });
  const midnight = (date) => new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
  const days = Math.round((midnight(when) - midnight(new Date())) / 86400000);
  if (days <= 0) return `today at ${time}`;
  if (days === 1) return `tomorrow at ${time}`;
  const date = when.toLocaleDateString(
    undefined,
    days < 7 ? { weekday: "long" } : { weekday: "long", month: "long", day: "numeric" },
  );
  return `on ${date} at ${time}`;
}

const state = {
  config: null, // widget config from GET config
  available: true,
  unavailableReason: null, // why not available (a key of UNAVAILABLE), null when available
  opensAt: null, // when a closed team is back (config `opens_at`, ISO 8601), null when unknown or open
  token: null,
  conversation: null, // visitor conversation object (§5)
  thread: null, // the conversation's messages and sends (static/js/protocol.js)
  typingSentAt: 0,
  typingIdleTimer: null,
  agentTypingTimer: null,
  open: !PARENT, // opened directly: always "open"
  seenSeq: 0,
  agentReadSeq: 0,
  endArmed: null,
  seenTimer: null,
  // The client_id of the start request, kept until a start succeeds (see startSession).
  startClientId: null,
  switchOffers: [], // the channels this chat may move to now (hello.switch), in the widget's order
  moved: null, // the visitor's earlier conversation that went on by SMS, WhatsApp or email
  // This chat moved to WhatsApp, SMS or email through a link the agent sent (protocol 1.20): it stays live here.
  followsMove: false,
  elsewhere: false, // the chat went on in another browser (an auth code): the start form says so once
  queue: null, // {position, estimated_wait_seconds} while this conversation waits in a queue (hello, queue.position)
  queueKnown: false, // whether `queue` is the server's word for this conversation (from its start or hello)
};

// --- small helpers -----------------------------------------------------------------------------

// localStorage can be unavailable (privacy settings); the widget then lives for this page only.
const store = {
  read() {
    try {
      return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
    } catch (_) {
      return {};
    }
  },
  write(patch) {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({ ...store.read(), ...patch }));
    } catch (_) {
      /* see above */
    }
  },
};

function api(path, { method = "GET", json, form } = {}) {
  return fetchJson(API + path, {
    method,
    json,
    form,
    headers: state.token ? { "X-Visitor-Token": state.token } : {},
    credentials: "omit",
    cache: "no-store",
    offlineMessage: "You seem to be offline. Please try again.",
  });
}

// --- the embedding page (loader.js) ------------------------------------------------------------

function toParent(message) {
  if (PARENT) window.parent.postMessage({ source: MSG_SOURCE, ...message }, PARENT);
}

window.addEventListener("message", (event) => {
  if (!PARENT || event.origin !== PARENT || event.source !== window.parent) return;
  const data = event.data;
  if (!data || data.source !== MSG_SOURCE) return;
  if (data.type === "opened") {
    state.open = true;
    markSeen();
    if (!ui.composer.hidden) ui.text.focus();
    else if (!ui.formView.hidden) ui.form.querySelector("input, textarea")?.focus();
  } else if (data.type === "closed") {
    state.open = false;
  } else if (data.type === "auth_code" && typeof data.code === "string") {
    redeemAuthCode(data.id, data.code);
  } else if (data.type === "identify" && data.user && typeof data.user === "object") {
    identifyUser(data.id, data.user);
  } else if (data.type === "logout") {
    signOut();
  }
});

// --- auth codes (protocol 1.19): the page initialised the widget with a code that signs its visitor in -------

const CHANNEL_LABELS = { web: "web chat", sms: "SMS", whatsapp: "WhatsApp", email: "email" };

/** The signed-in visitor's earlier conversations on every channel, above the current one (text only). */
async function loadHistory() {
  if (!state.token) return;
  let conversations = [];
  try {
    conversations = (await api("/history")).conversations || [];
  } catch (_) {
    return; // history is a courtesy: the chat itself works without it
  }
  const nodes = [];
  for (const conversation of conversations) {
    const when = new Date(conversation.created_at).toLocaleDateString();
    const where = CHANNEL_LABELS[conversation.channel] || conversation.channel;
    nodes.push(h("li", { cls: "sb-event", text: `Earlier conversation by ${where}, ${when}` }));
    for (const message of conversation.messages) {
      // No links: files of earlier conversations are named only.
      const attachments = (message.attachments || []).map((a) => ({ ...a, is_image: false, url: "" }));
      const node = messageNode({ ...message, attachments });
      node.hidden = false; // an introduction sent by SMS is part of what the customer saw there
      nodes.push(node);
    }
  }
  ui.history.replaceChildren(...nodes);
  ui.history.hidden = nodes.length === 0;
}

async function redeemAuthCode(id, code) {
  let result;
  try {
    result = await api("/auth-code", { method: "POST", json: { code } });
  } catch (error) {
    toParent({ type: "auth_code.result", id, ok: false, code: error.code || "error", message: error.message });
    return;
  }
  // Whoever this browser was before, it is now the code's contact.
  if (state.conversation) client.disconnect();
  state.conversation = null;
  state.moved = null;
  saveToken(result.token);
  store.write({ signedIn: true }); // a reload shows the history again
  if (result.conversation) enterChat(result.conversation);
  else showForm();
  await loadHistory();
  toParent({
    type: "auth_code.result",
    id,
    ok: true,
    conversation_id: result.conversation ? result.conversation.id : null,
  });
}

// --- identity verification (protocol 1.21): the page passed a user of its site, signed by its backend ----------

/** Whoever this browser was signed in as is nobody now: a new anonymous visitor, no history shown. */
function signOut() {
  if (state.conversation) client.disconnect();
  resetLog();
  state.conversation = null;
  state.moved = null;
  saveToken(null);
  ui.history.replaceChildren();
  ui.history.hidden = true;
  if (state.config) showForm();
}

async function identifyUser(id, user) {
  const text = (value) => (typeof value === "string" ? value : value == null ? "" : String(value));
  const body = {
    user_id: text(user.id),
    signature: text(user.signature),
    email: text(user.email),
    phone: text(user.phone),
    name: text(user.name),
  };
  let result;
  try {
    result = await api("/identify", { method: "POST", json: body });
  } catch (error) {
    // Refused: a browser signed in as somebody before must not go on showing their chats; an anonymous visitor's
    // own chat goes on.
    if (store.read().signedIn) signOut();
    toParent({ type: "identify.result", id, ok: false, code: error.code || "error", message: error.message });
    return;
  }
  const same = state.conversation && result.conversation && state.conversation.id === result.conversation.id;
  saveToken(result.token);
  store.write({ signedIn: true }); // a reload shows the history again
  if (!same) {
    if (state.conversation) client.disconnect();
    state.conversation = null;
    state.moved = null;
    if (result.conversation) enterChat(result.conversation);
    else showForm();
  }
  await loadHistory();
  toParent({
    type: "identify.result",
    id,
    ok: true,
    conversation_id: result.conversation ? result.conversation.id : null,
  });
}

function requestHeight(height) {
  toParent({ type: "resize", height: Math.min(FORM_HEIGHT_MAX, Math.ceil(height)) });
}

// --- views -------------------------------------------------------------------------------------

function applyTheme(accent, title) {
  if (/^#[0-9a-f]{6}$/i.test(accent || "")) {
    const n = parseInt(accent.slice(1), 16);
    const lin = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    const luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    // CSSOM writes are allowed by the page's CSP (style-src 'self'), unlike inline style attributes.
    document.documentElement.style.setProperty("--accent", accent);
    document.documentElement.style.setProperty("--on-accent", luminance > 0.45 ? "#111827" : "#ffffff");
  }
  if (title) {
    ui.title.textContent = title;
    document.title = title;
  }
}

function showView(name) {
  ui.loading.hidden = name !== "loading";
  ui.formView.hidden = name !== "form";
  ui.chatView.hidden = name !== "chat";
  ui.composer.hidden = name !== "chat";
  ui.ended.hidden = true;
  if (name !== "chat") {
    ui.typing.hidden = true;
    ui.notice.hidden = true;
  }
  renderQueue();
  if (name === "chat") requestHeight(FORM_HEIGHT_MAX);
  if (name === "form") {
    const header = document.querySelector(".sb-header").offsetHeight;
    requestHeight(header + ui.formView.scrollHeight + 8);
  }
}

function showBanner(text, isError = false) {
  ui.banner.textContent = text;
  ui.banner.classList.toggle("is-error", isError);
  ui.banner.hidden = !text;
}

function setSubtitle() {
  const conversation = state.conversation;
  let text = "We are online";
  if (conversation && conversation.status === "open") {
    text = conversation.agent_name ? `Chatting with ${conversation.agent_name}` : "An agent is with you";
  } else if (conversation && conversation.status === "waiting") {
    // In a queue it waits for an agent whatever the config said when the page loaded (e.g. the queue it is in
    // is full now): only a conversation in no queue is a message left for later.
    text = state.available || !offlineKnown() ? "Waiting for an agent…" : unavailable().subtitle;
  } else if (conversation && conversation.status === "closed") {
    text = "This chat has ended";
  } else if (!state.available) {
    text = unavailable().subtitle;
  }
  ui.subtitle.textContent = text;
  // Below the conversation while nobody can answer: the message is kept, the reply comes here.
  const waitingOffline = Boolean(conversation?.status === "waiting" && !state.available && offlineKnown());
  ui.notice.textContent = waitingOffline ? `Thanks, your message was received. ${unavailable().notice}` : "";
  ui.notice.hidden = !waitingOffline || ui.chatView.hidden;
  const initial = conversation && conversation.agent_name ? conversation.agent_name : ui.title.textContent;
  ui.avatar.textContent = (initial.trim()[0] || "?").toUpperCase();
}

// --- the start form: pre-chat survey, or an offline message --------------------------------------

const FIELD_INPUT = {
  name: { type: "text", autocomplete: "name" },
  email: { type: "email", autocomplete: "email" },
  phone: { type: "tel", autocomplete: "tel", placeholder: "+44 20 7946 0958" },
  text: { type: "text", autocomplete: "off" },
};

function buildField({ key, label, kind, required, multiline, maxLength }) {
  const id = `sb-field-${key}`;
  const input = multiline ? h("textarea", { attrs: { rows: "3" } }) : h("input");
  input.id = id;
  input.name = key;
  input.maxLength = maxLength || 500;
  if (!multiline) {
    const spec = FIELD_INPUT[kind] || FIELD_INPUT.text;
    input.type = spec.type;
    input.autocomplete = spec.autocomplete;
    if (spec.placeholder) input.placeholder = spec.placeholder;
  }
  input.required = Boolean(required);
  input.dataset.kind = kind;
  const error = h("p", { cls: "sb-error", attrs: { id: `${id}-error`, "aria-live": "polite" } });
  error.hidden = true;
  input.setAttribute("aria-describedby", error.id);
  const labelEl = h("label", { text: label, attrs: { for: id } });
  if (!required) labelEl.appendChild(h("span", { cls: "sb-optional", text: " (optional)" }));
  return h("div", { cls: "sb-field", attrs: { "data-key": key } }, [labelEl, input, error]);
}

function showForm() {
  const widget = state.config.widget;
  state.conversation = null;
  ui.fields.replaceChildren();
  ui.formError.hidden = true;
  ui.intro.textContent = state.available
    ? widget.greeting
    : unavailable().form || widget.offline_message || NOBODY_ONLINE_FORM;
  ui.intro.classList.toggle("is-offline", !state.available);
  ui.intro.dataset.reason = state.available ? "" : state.unavailableReason || "";
  ui.intro.hidden = !ui.intro.textContent;
  ui.moved.textContent = state.elsewhere
    ? "Your conversation continues in another browser, where you signed in. You can start a new chat here."
    : state.moved
      ? movedText(state.moved, "Your earlier conversation")
      : "";
  ui.moved.hidden = !ui.moved.textContent;
  state.elsewhere = false;
  const fields = widget.survey_enabled ? widget.survey_fields || [] : [];
  for (const field of fields) ui.fields.appendChild(buildField(field));
  ui.fields.appendChild(
    buildField({
      key: "message",
      label: state.available ? "How can we help?" : "Your message",
      kind: "text",
      required: !state.available,
      multiline: true,
      maxLength: widget.max_message_chars,
    }),
  );
  ui.submit.textContent = state.available ? "Start chat" : "Leave a message";
  ui.submit.disabled = false;
  setSubtitle();
  showView("form");
}

function setFieldError(key, message) {
  const field = ui.fields.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!field) return false;
  const error = field.querySelector(".sb-error");
  error.textContent = message || "";
  error.hidden = !message;
  field.classList.toggle("has-error", Boolean(message));
  field.querySelector("input, textarea").setAttribute("aria-invalid", message ? "true" : "false");
  return true;
}

// The browser's check; the server checks again and its field errors land in the same places.
function validateField(input) {
  const value = input.value.trim();
  if (input.required && !value) return "Please fill this in.";
  if (!value) return "";
  if (input.dataset.kind === "email" && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) {
    return "Please enter a valid email address.";
  }
  if (input.dataset.kind === "phone") {
    const digits = value.replace(/\D/g, "");
    if (!value.startsWith("+") || digits.length < 7 || digits.length > 15 || /[^\d\s().+-]/.test(value)) {
      return "Please enter the number in international format, e.g. +44 20 7946 0958.";
    }
  }
  return "";
}

ui.fields.addEventListener("input", (event) => {
  const field = event.target.closest(".sb-field");
  if (field && field.classList.contains("has-error")) setFieldError(field.dataset.key, validateField(event.target));
});

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  ui.formError.hidden = true;
  let firstInvalid = null;
  const answers = {};
  let message = "";
  for (const input of ui.fields.querySelectorAll("input, textarea")) {
    const problem = validateField(input);
    setFieldError(input.name, problem);
    if (problem && !firstInvalid) firstInvalid = input;
    if (input.name === "message") message = input.value.trim();
    else answers[input.name] = input.value.trim();
  }
  if (firstInvalid) {
    firstInvalid.focus();
    return;
  }
  ui.submit.disabled = true;
  // Kept across failed submits too (the user may send the form again after an error): only a start
  // that succeeded, or a refused client_id, ends it.
  state.startClientId = state.startClientId || uuid();
  try {
    const started = await startSession({ answers, message, client_id: state.startClientId });
    state.startClientId = null;
    saveToken(started.token);
    // A resumed start is an earlier conversation: whether it waits in a queue, its hello says.
    enterChat(started.conversation, { offline: started.resumed ? undefined : started.offline });
  } catch (error) {
    ui.submit.disabled = false;
    if (error.code === "duplicate_client_id") state.startClientId = null;
    if (error.code === "invalid_token") {
      // A stale token: start afresh without it.
      saveToken(null);
      ui.formError.textContent = "Your previous session expired. Please send the form again.";
    } else if (error.status === 429) {
      // Nothing was started; the form keeps what the visitor typed for when they try again.
      const seconds = Math.max(1, Math.ceil(error.retryAfter || 60));
      const unit = seconds === 1 ? "second" : "seconds";
      ui.formError.textContent = `Too many chats started from here; try again in ${seconds} ${unit}.`;
    } else {
      let placed = false;
      for (const [key, messages] of Object.entries(error.fields)) {
        placed = setFieldError(key, messages.join(" ")) || placed;
      }
      if (error.code === "offline_message_required" || error.code === "message_too_long") {
        placed = setFieldError("message", error.message) || placed;
      }
      ui.formError.textContent = placed ? "Please check the fields above." : error.message;
    }
    ui.formError.hidden = false;
  }
});

// A start whose answer was lost (network, a proxy's 5xx) may still have made the conversation: every
// retry resends the same client_id, and the server answers with that conversation instead of a second.
const START_ATTEMPTS = 3;

async function startSession(json) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api("/sessions", { method: "POST", json });
    } catch (error) {
      const transient = error.status === 0 || error.status >= 500;
      if (!transient || attempt >= START_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
    }
  }
}

function saveToken(token) {
  state.token = token;
  store.write(token ? { token } : { token, signedIn: false });
}

// --- the conversation --------------------------------------------------------------------------

function resetLog() {
  ui.log.replaceChildren();
  state.followsMove = false;
  if (state.thread) client.forget(state.thread.id);
  state.thread = null;
  ui.pending.replaceChildren();
  state.agentReadSeq = 0;
  state.queue = null;
  state.queueKnown = false;
  renderQueue();
}

/** The highest seq known, including private notes this side never sees (from resume.done). */
function lastSeq() {
  return state.thread ? state.thread.lastSeq : 0;
}

/** `offline`: what the start answered (undefined for a conversation resumed after a reload); `following`: a
 * conversation that moved through a link, shown live without a composer. */
function enterChat(conversation, { offline, following } = {}) {
  resetLog();
  state.followsMove = Boolean(following);
  state.elsewhere = false;
  state.conversation = conversation;
  state.seenSeq = Number(store.read()[`seen:${conversation.id}`]) || 0;
  state.agentReadSeq = conversation.agent_read_seq || 0;
  if (offline && state.available) {
    // The config said a chat could start; the start found otherwise and kept it as a message (protocol 1.10).
    state.available = false;
    state.unavailableReason = "unknown";
  }
  // An offline message waits in no queue; a chat just routed gets its place in hello.
  if (offline !== undefined) state.queueKnown = true;
  state.thread = client.thread(conversation.id, {
    log: ui.log,
    scroller: ui.body,
    render: messageNode,
    onMessage: onMessageNew,
    onAck: (el, frame) => setMeta(el, frame.created_at, frame.seq <= state.agentReadSeq ? "seen" : "sent"),
    onFailed: onSendFailed,
    onResumed: markSeen,
  });
  const greeting = state.config.widget.greeting;
  if (greeting) ui.log.appendChild(h("li", { cls: "sb-event", text: greeting }));
  showView("chat");
  setSubtitle();
  renderSwitch();
  if (isMoved(conversation) && !state.followsMove) {
    showMoved(conversation);
    return;
  }
  if (conversation.status === "closed") showEnded();
  else if (state.followsMove) showFollowing(conversation);
  client.connect();
  if (state.open && !ui.composer.hidden) ui.text.focus();
}

function showEnded() {
  ui.composer.hidden = true;
  ui.typing.hidden = true;
  ui.endedText.textContent = "This chat has ended.";
  ui.restart.hidden = false;
  ui.ended.hidden = false;
  setSubtitle();
}

// --- channel switching (seed 000): move this chat to SMS, WhatsApp or email -------------------------------

function isMoved(conversation) {
  return Boolean(conversation && conversation.channel && conversation.channel !== "web");
}

function movedText(conversation, subject) {
  const words = CHANNEL_WORDS[conversation.channel] || conversation.channel;
  const where = conversation.channel_address ? ` at ${conversation.channel_address}` : "";
  return `${subject} continues by ${words}${where}.`;
}

/** The switch moved this chat away from the web: the live session ends here, for good. */
function showMoved(conversation) {
  state.moved = conversation;
  state.switchOffers = [];
  renderSwitch();
  client.disconnect();
  ui.composer.hidden = true;
  ui.typing.hidden = true;
  ui.endedText.textContent = `${movedText(conversation, "This conversation")} You can start a new chat here.`;
  ui.restart.hidden = false;
  ui.ended.hidden = false;
  ui.subtitle.textContent = `Continues by ${CHANNEL_WORDS[conversation.channel] || conversation.channel}`;
}

/** The chat moved through a link the agent sent (protocol 1.20): the customer writes from their app now, and the
 * conversation stays live here, both sides' messages arriving over the socket as before; only the composer goes. */
function showFollowing(conversation) {
  if (conversation.status === "closed") {
    showEnded();
    return;
  }
  state.switchOffers = [];
  renderSwitch();
  ui.composer.hidden = true;
  const words = CHANNEL_WORDS[conversation.channel] || conversation.channel;
  const where = conversation.channel === "whatsapp" ? `on ${words}` : `by ${words}`;
  const address = conversation.channel_address ? ` (${conversation.channel_address})` : "";
  ui.endedText.textContent = `This conversation continues ${where}${address}; new messages show here too.`;
  ui.restart.hidden = true; // a new chat here would leave this one: it goes on in the app
  ui.ended.hidden = false;
}

// The links of a `link_request.sent` notice, as buttons: only these schemes are ever made into a link.
const LINK_BUTTONS = { whatsapp: "Continue on WhatsApp", sms: "Continue by SMS", email: "Continue by email" };
const LINK_SCHEMES = new Set(["https:", "sms:", "mailto:"]);

function linkHref(url) {
  try {
    return typeof url === "string" && LINK_SCHEMES.has(new URL(url).protocol) ? url : null;
  } catch (_) {
    return null;
  }
}

function linksNode(message) {
  const li = h("li", { cls: "sb-event sb-links" }, [h("p", { cls: "sb-links-text", text: message.body || "" })]);
  const links = message.event_data && Array.isArray(message.event_data.links) ? message.event_data.links : [];
  const buttons = h("div", { cls: "sb-links-buttons" });
  for (const link of links) {
    const href = linkHref(link && link.url);
    if (!href) continue;
    const label = LINK_BUTTONS[link.channel] || `Continue on ${link.channel}`;
    const anchor = h("a", { cls: "sb-link-button", text: label, attrs: { target: "_blank", rel: "noopener" } });
    anchor.href = href;
    anchor.dataset.channel = String(link.channel);
    buttons.appendChild(anchor);
  }
  li.appendChild(buttons);
  return li;
}

function renderSwitch() {
  const live = state.conversation && state.conversation.status !== "closed" && !isMoved(state.conversation);
  ui.switchButton.hidden = !(live && state.switchOffers.length);
  if (ui.switchButton.hidden) closeSwitchMenu();
}

function closeSwitchMenu() {
  ui.switchMenu.hidden = true;
  ui.switchButton.setAttribute("aria-expanded", "false");
}

function openSwitchMenu() {
  ui.switchOptions.replaceChildren(
    ...state.switchOffers.map((offer) => {
      const button = h("button", { cls: "sb-switch-option", attrs: { type: "button" } }, [
        h("span", { text: offer.label }),
        h("span", { cls: "sb-switch-address", text: offer.address }),
      ]);
      button.dataset.channel = offer.channel;
      button.addEventListener("click", () => pickChannel(offer));
      return button;
    }),
  );
  ui.switchMenu.hidden = false;
  ui.switchButton.setAttribute("aria-expanded", "true");
  const first = ui.switchOptions.querySelector("button");
  if (first) first.focus();
}

function pickChannel(offer) {
  for (const button of ui.switchOptions.querySelectorAll("button")) button.disabled = true;
  const enable = () => {
    for (const button of ui.switchOptions.querySelectorAll("button")) button.disabled = false;
  };
  client.request(
    { type: "conversation.switch", conversation_id: state.conversation.id, channel: offer.channel },
    {
      // The move itself arrives as conversation.updated (with the confirmation in the log before it).
      ok: () => closeSwitchMenu(),
      fail: (frame) => {
        enable();
        showBanner(frame.message || "That did not work. Please try again.", true);
      },
    },
  );
}

ui.switchButton.addEventListener("click", () => {
  if (ui.switchMenu.hidden) openSwitchMenu();
  else closeSwitchMenu();
});
ui.switchCancel.addEventListener("click", () => {
  closeSwitchMenu();
  ui.switchButton.focus();
});

function attachmentNode(attachment, localPreviewUrl) {
  const url = attachment.url;
  if (attachment.is_image || localPreviewUrl) {
    const img = h("img", { attrs: { alt: attachment.filename, loading: "lazy" } });
    img.src = localPreviewUrl || url;
    const link = h("a", { cls: "sb-file", attrs: { target: "_blank", rel: "noopener" } }, [img]);
    if (url) link.href = url;
    return h("div", { cls: "sb-bubble is-file" }, [link]);
  }
  const chip = h("a", {
    cls: "sb-file sb-file-chip",
    text: `${attachment.filename} (${formatBytes(attachment.size || 0)})`,
    attrs: { rel: "noopener" },
  });
  if (url) {
    chip.href = url;
    chip.setAttribute("download", attachment.filename);
  }
  return h("div", { cls: "sb-bubble is-file" }, [chip]);
}

function messageNode(message, { status } = {}) {
  if (message.sender === "system" && message.event === "link_request.sent") return linksNode(message);
  if (message.sender === "system") {
    const li = h("li", { cls: "sb-event" });
    // What was sent to the visitor's phone or mailbox after a switch: it is there, not here.
    if (message.event === "channel.introduction") li.hidden = true;
    if (message.event === "agent.joined" && message.event_data && message.event_data.agent_name) {
      li.append(h("strong", { text: message.event_data.agent_name }), document.createTextNode(" joined the chat"));
    } else {
      li.textContent = message.body || "";
    }
    return li;
  }
  const mine = message.sender === "visitor";
  const li = h("li", { cls: `sb-msg ${mine ? "is-visitor" : "is-agent"}` });
  if (!mine) li.appendChild(h("span", { cls: "sb-sender", text: message.sender_name || "Agent" }));
  if (message.body) li.appendChild(h("div", { cls: "sb-bubble", text: message.body }));
  for (const attachment of message.attachments || []) {
    li.appendChild(attachmentNode(attachment, message.localPreviews && message.localPreviews[attachment.id]));
  }
  const meta = h("span", { cls: "sb-meta" });
  li.appendChild(meta);
  setMeta(li, message.created_at, mine ? status : null);
  return li;
}

function setMeta(li, createdAt, status) {
  const meta = li.querySelector(".sb-meta");
  if (!meta) return;
  li.dataset.time = createdAt || li.dataset.time || "";
  const label = { sending: "Sending…", sent: "Sent", seen: "Seen", failed: "Not sent" }[status] || "";
  meta.textContent = label ? `${clock(li.dataset.time)} · ${label}` : clock(li.dataset.time);
  if (status) li.dataset.status = status;
  li.classList.toggle("is-failed", status === "failed");
}

function refreshSeen() {
  for (const li of ui.log.querySelectorAll(".sb-msg.is-visitor[data-seq]")) {
    const status = Number(li.dataset.seq) <= state.agentReadSeq ? "seen" : "sent";
    if (li.dataset.status !== "failed" && li.dataset.status !== status) setMeta(li, null, status);
  }
}

/** After the thread placed a new message (its own copy of a pending one included). */
function onMessageNew(message, li, { replay, stick }) {
  if (message.sender === "visitor") setMeta(li, message.created_at, message.seq <= state.agentReadSeq ? "seen" : "sent");
  if (message.sender === "agent") hideAgentTyping();
  if (message.event === "agent.joined" && state.conversation) {
    state.conversation.agent_name = message.event_data.agent_name || state.conversation.agent_name;
    setSubtitle();
  }
  if (message.event === "conversation.closed" && state.conversation) {
    state.conversation.status = "closed";
    showEnded();
  }
  if (message.event === "conversation.switched") {
    // The latest move decides: one a link request made keeps this chat live here (it comes before the
    // conversation.updated that carries the new channel).
    const data = message.event_data || {};
    state.followsMove = data.via === "link" && data.to !== "web";
    if (data.to === "web" && !replay) {
      // Brought back to the web chat by an auth code, live: always for another browser's new visitor (the browser
      // that redeemed the code reads this notice only in its history), so this page no longer holds the chat.
      state.elsewhere = true;
      setTimeout(() => {
        client.disconnect();
        resetLog();
        restoreSession(); // the start form, saying where the chat went; or the chat, were it still this visitor's
      }, 0);
    }
  }
  if (stick || !replay) scrollToEnd(ui.body);
  markSeen();
}

function unreadCount() {
  let count = 0;
  for (const [seq, li] of state.thread ? state.thread.bySeq : []) {
    if (seq > state.seenSeq && !li.classList.contains("is-visitor")) count += 1;
  }
  return count;
}

/** The visitor has seen everything when the window is open and the tab visible. */
function markSeen() {
  // Batched: a replay of fifty messages sends one read marker, not fifty.
  clearTimeout(state.seenTimer);
  state.seenTimer = setTimeout(flushSeen, 200);
}

function flushSeen() {
  if (state.open && document.visibilityState === "visible" && lastSeq() > state.seenSeq) {
    state.seenSeq = lastSeq();
    if (state.conversation) store.write({ [`seen:${state.conversation.id}`]: state.seenSeq });
    send({ type: "read", seq: state.seenSeq });
  }
  toParent({ type: "unread", count: unreadCount() });
}

document.addEventListener("visibilitychange", markSeen);

// --- the socket ----------------------------------------------------------------------------------

const client = new ProtocolClient({
  url: () =>
    socketUrl(`/ws/visitor/conversations/${state.conversation.id}/?token=${encodeURIComponent(state.token)}`),
  onOpen: () => {
    showBanner("");
    state.thread.resume();
  },
  onFrame,
  onClose: onSocketClosed,
});

const send = (frame) => client.send(frame);

async function onSocketClosed(code, { reconnecting }) {
  if (code === 4401) {
    // The token is no longer good: forget it and start over.
    saveToken(null);
    resetLog();
    showForm();
    return;
  }
  if (code === 4404) {
    await restoreSession();
    return;
  }
  if (code === 4403) {
    showBanner("This chat is not available.", true);
    return;
  }
  if (reconnecting) showBanner("Connection lost. Reconnecting…");
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      state.switchOffers = Array.isArray(frame.switch) ? frame.switch : [];
      // Before the conversation: its subtitle depends on whether it waits in a queue.
      if (frame.conversation && state.conversation && frame.conversation.id === state.conversation.id) {
        setQueue(frame.queue);
        setSubtitle();
      }
      updateConversation(frame.conversation);
      renderSwitch();
      if (frame.limits) {
        state.config.widget.max_upload_bytes = frame.limits.max_upload_bytes;
        state.config.widget.allowed_file_types = frame.limits.allowed_file_types;
        state.config.widget.max_message_chars = frame.limits.max_chars;
      }
      break;
    case "typing":
      if (frame.side === "agent") {
        if (frame.is_typing) showAgentTyping(frame.name);
        else hideAgentTyping();
      }
      break;
    case "read":
      if (frame.side === "agent") {
        state.agentReadSeq = Math.max(state.agentReadSeq, frame.seq);
        refreshSeen();
      }
      break;
    case "conversation.updated":
      updateConversation(frame.conversation);
      break;
    case "queue.position":
      // One that arrives after the answer (from another server process) is late: the chat is no longer waiting.
      if (frame.conversation_id === state.conversation?.id && state.conversation.status === "waiting") {
        if (frame.reason) {
          // Out of the line for good (protocol 1.12: the queue's last agent went offline): the chat is now a
          // message left for later, and the widget says so as it does for one left while nobody was online.
          state.available = false;
          state.unavailableReason = frame.reason;
          state.queueKnown = true;
        }
        setQueue(frame);
        setSubtitle();
      }
      break;
    // message.new, message.ack, resume.done and refused sends: handled by the thread (protocol.js).
    case "error":
      onError(frame);
      break;
    default:
      break; // pong, ok, and types of later protocol versions
  }
}

function updateConversation(conversation) {
  if (!conversation || !state.conversation || conversation.id !== state.conversation.id) return;
  // Older than what is shown (it was overtaken by a later one from another server process): dropped.
  if (isStale(state.conversation, conversation)) return;
  state.conversation = conversation;
  state.agentReadSeq = Math.max(state.agentReadSeq, conversation.agent_read_seq || 0);
  refreshSeen();
  if (conversation.status !== "waiting") state.queue = null; // answered, closed: out of the queue
  renderQueue();
  setSubtitle();
  if (isMoved(conversation)) (state.followsMove ? showFollowing : showMoved)(conversation);
  else if (conversation.status === "closed") showEnded();
  renderSwitch();
}

/** An own message the server refused for good (a retryable refusal is resent by the thread). */
function onSendFailed(el, frame) {
  setMeta(el, null, "failed");
  el.title = frame.message || "";
  if (frame.code === "conversation_closed") onError(frame);
}

/** Error frames the thread did not take (a send of ours refused for good comes here only when closed). */
function onError(frame) {
  if (frame.code === "conversation_closed" && state.conversation) {
    state.conversation.status = "closed";
    showEnded();
    return;
  }
  if (frame.code === "conversation_switched") {
    restoreSession();
    return;
  }
  if (frame.message) {
    showBanner(frame.message, true);
    setTimeout(() => showBanner(""), 5000);
  }
}

// --- the queue (protocol 1.10): the visitor's place while no agent has taken the chat yet ----------------------

/** From hello.queue or a queue.position frame; anything but a place in line (null included) clears it. */
function setQueue(place) {
  state.queueKnown = true;
  // Number(null) is 0: a null position (out of the line, protocol 1.12) must not read as the first place.
  const position = place && place.position !== null ? Number(place.position) : NaN;
  if (!Number.isInteger(position) || position < 1) {
    state.queue = null;
  } else {
    const seconds = place.estimated_wait_seconds;
    state.queue = { position, estimated_wait_seconds: Number.isFinite(seconds) ? seconds : null };
  }
  renderQueue();
}

/** The waiting conversation is a message left for later (in no queue), as far as the server has said yet. After
 * a reload that is only known from hello: until then it reads as waiting for an agent, which is true either way. */
function offlineKnown() {
  return state.queueKnown && !state.queue;
}

function queueText(place) {
  const where = place.position <= 1 ? "You are next in line" : `You are number ${place.position} in line`;
  const seconds = place.estimated_wait_seconds;
  if (seconds === null) return where;
  return `${where} · ${seconds < 60 ? "less than a minute" : `about ${Math.ceil(seconds / 60)} min`}`;
}

function renderQueue() {
  const conversation = state.conversation;
  const waiting = Boolean(conversation && conversation.status === "waiting" && !isMoved(conversation));
  const shown = Boolean(state.queue && waiting && !ui.chatView.hidden);
  const text = shown ? queueText(state.queue) : "";
  // Rewritten only when the words change: a live region repeats whatever is put into it.
  if (ui.queue.textContent === text) return;
  ui.queue.replaceChildren(...(text ? [h("p", { cls: "sb-queue-line", text })] : []));
}

function showAgentTyping(name) {
  ui.typing.replaceChildren(
    h("span", { cls: "sb-dots", attrs: { "aria-hidden": "true" } }, [h("i"), h("i"), h("i")]),
    document.createTextNode(`${name || "The agent"} is typing…`),
  );
  ui.typing.hidden = false;
  clearTimeout(state.agentTypingTimer);
  // A lost "stopped typing" frame must not leave the indicator on for ever.
  state.agentTypingTimer = setTimeout(hideAgentTyping, 8000);
}

function hideAgentTyping() {
  clearTimeout(state.agentTypingTimer);
  ui.typing.hidden = true;
  ui.typing.replaceChildren();
}

// --- composing and sending -----------------------------------------------------------------------

function sendMessage(body, attachments = [], localPreviews = {}) {
  const el = messageNode(
    { sender: "visitor", body, attachments, localPreviews, created_at: new Date().toISOString() },
    { status: "sending" },
  );
  // When the socket is down, the resume after the reconnect sends it.
  state.thread.send({ body, attachment_ids: attachments.map((a) => a.id) }, el);
}

function submitText() {
  const body = ui.text.value.trim();
  if (!body) return;
  const max = state.config.widget.max_message_chars || 4000;
  if (body.length > max) {
    showBanner(`Messages can be at most ${max} characters.`, true);
    setTimeout(() => showBanner(""), 4000);
    return;
  }
  ui.text.value = "";
  autoGrow();
  stopTyping();
  sendMessage(body);
}

function autoGrow() {
  ui.text.style.height = "auto";
  ui.text.style.height = `${Math.min(ui.text.scrollHeight + 2, 120)}px`;
}

function stopTyping() {
  clearTimeout(state.typingIdleTimer);
  if (state.typingSentAt) {
    state.typingSentAt = 0;
    send({ type: "typing", is_typing: false });
  }
}

ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitText();
  }
});

ui.text.addEventListener("input", () => {
  autoGrow();
  if (!ui.text.value.trim()) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (now - state.typingSentAt > TYPING_REPEAT_MS) {
    state.typingSentAt = now;
    send({ type: "typing", is_typing: true });
  }
  clearTimeout(state.typingIdleTimer);
  state.typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
});

ui.send.addEventListener("click", submitText);

// --- files ---------------------------------------------------------------------------------------

function fileProblem(file) {
  const widget = state.config.widget;
  const types = widget.allowed_file_types || [];
  if (types.length && !types.includes(file.type)) {
    return `${file.name}: this type of file cannot be sent.`;
  }
  if (file.size > widget.max_upload_bytes) {
    return `${file.name} is larger than ${formatBytes(widget.max_upload_bytes)}.`;
  }
  if (file.size === 0) return `${file.name} is empty.`;
  return "";
}

function pendingChip(file, text, isError) {
  const chip = h("span", { cls: `sb-pending-item${isError ? " is-error" : ""}` });
  chip.appendChild(h("span", { text }));
  ui.pending.appendChild(chip);
  if (isError) setTimeout(() => chip.remove(), 6000);
  return chip;
}

async function uploadFiles(files) {
  for (const file of files) {
    const problem = fileProblem(file);
    if (problem) {
      pendingChip(file, problem, true);
      continue;
    }
    const chip = pendingChip(file, `Uploading ${file.name}…`, false);
    const form = new FormData();
    form.append("file", file);
    form.append("conversation_id", String(state.conversation.id));
    try {
      const { attachment } = await api("/uploads", { method: "POST", form });
      chip.remove();
      const previews = file.type.startsWith("image/") ? { [attachment.id]: URL.createObjectURL(file) } : {};
      sendMessage("", [attachment], previews);
    } catch (error) {
      chip.remove();
      pendingChip(file, `${file.name}: ${error.message}`, true);
    }
  }
}

ui.attach.addEventListener("click", () => ui.file.click());
ui.file.addEventListener("change", () => {
  const files = [...ui.file.files];
  ui.file.value = "";
  uploadFiles(files);
});
for (const target of [ui.composer, ui.chatView]) {
  target.addEventListener("dragover", (event) => {
    if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    ui.composer.classList.add("is-dragging");
  });
  target.addEventListener("dragleave", () => ui.composer.classList.remove("is-dragging"));
  target.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.composer.classList.remove("is-dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) uploadFiles([...event.dataTransfer.files]);
  });
}

// --- ending, restarting, minimising -----------------------------------------------------------------

function disarmEnd() {
  clearTimeout(state.endArmed);
  state.endArmed = null;
  ui.end.textContent = "End chat";
  ui.end.classList.remove("is-armed");
}

ui.end.addEventListener("click", () => {
  // A second click within a few seconds confirms: ending by accident would lose the agent.
  if (!state.endArmed) {
    ui.end.textContent = "Click again to end the chat";
    ui.end.classList.add("is-armed");
    state.endArmed = setTimeout(disarmEnd, 4000);
    return;
  }
  disarmEnd();
  send({ type: "conversation.close" });
});

ui.restart.addEventListener("click", () => {
  client.disconnect();
  resetLog();
  refreshAvailability().then(showForm);
});

if (PARENT) {
  ui.minimize.hidden = false;
  ui.minimize.addEventListener("click", () => toParent({ type: "close" }));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") toParent({ type: "close" });
  });
}

// --- start -------------------------------------------------------------------------------------------

async function refreshAvailability() {
  const config = await api("/config");
  state.config = config;
  state.available = Boolean(config.available);
  // Older servers send no reason: an unavailable widget then reads as "no one is available".
  state.unavailableReason = state.available ? null : config.unavailable_reason || "nobody_online";
  state.opensAt = config.opens_at || null;
}

async function restoreSession() {
  if (!state.token) {
    showForm();
    return;
  }
  try {
    const session = await api("/session");
    state.moved = session.moved || null;
    if (session.conversation) enterChat(session.conversation);
    // The customer followed a link to their app: this page goes on showing the conversation live (1.21).
    else if (session.moved && session.following) enterChat(session.moved, { following: true });
    else showForm();
  } catch (error) {
    if (error.status === 401) saveToken(null);
    showForm();
  }
}

async function start() {
  applyTheme(boot.accent, boot.title);
  showView("loading");
  try {
    await refreshAvailability();
  } catch (error) {
    ui.loading.textContent = error.status === 404 ? "This chat is not available." : error.message;
    return;
  }
  applyTheme(state.config.widget.accent_color, state.config.widget.title);
  state.token = store.read().token || null;
  await restoreSession();
  if (state.token && store.read().signedIn) await loadHistory();
  // After the session is known: the loader shows the launcher where the display rules allow, and always to a
  // visitor with a chat in progress (protocol 1.11).
  toParent({
    type: "ready",
    accent: state.config.widget.accent_color,
    title: state.config.widget.title,
    display: state.config.display || null,
    ongoing: Boolean(state.conversation),
  });
}

start();
