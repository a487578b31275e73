// One accepted chat: its tab, its pane cloned from <template id="cc-chat-template">, its thread, its state.

import { h } from "../js/dom.js";
import { isStale } from "../js/protocol.js";
import { errorToast, updateTitle } from "./attention.js";
import { closeTeamMenu, fillDispositions, refreshCloseButton, renderSide, wireControls } from "./chat-controls.js";
import { hidePeerTyping, wireComposer } from "./composer.js";
import { contactName, contactUrl, externalUrlOf } from "./format.js";
import { refreshLinks, refreshWebLink, wireLinks, wireWebLink } from "./links.js";
import { delivered, markRead, messageNode, onMessageNew, refreshSeen, setMeta } from "./messages.js";
import { removeOffer } from "./offers.js";
import { api, client, send } from "./server.js";
import { state, ui } from "./state.js";
import { activate, renderHome } from "./tabs.js";
import { renderWaiting } from "./waiting.js";
import { refreshWhatsApp, watchWhatsApp, wireWhatsApp } from "./whatsapp.js";

export const CHANNELS = { web: "Web chat", sms: "SMS", whatsapp: "WhatsApp", email: "Email" };

function supervises() {
  return state.me.role === "admin" || state.me.role === "supervisor";
}

/** A supervisor's read-only tab writes whispers only: private notes, no reply, no files, no templates. */
function setWhisper(chat, on) {
  if (Boolean(chat.whisper) === on) return;
  chat.whisper = on;
  const { composer } = chat.els;
  const reply = composer.querySelector('.js-mode[data-mode="reply"]');
  const note = composer.querySelector('.js-mode[data-mode="note"]');
  reply.hidden = on;
  chat.els.attach.hidden = on;
  chat.els.templatesBtn.hidden = on;
  composer.classList.toggle("is-whisper", on);
  note.textContent = on ? "Whisper (only agents see it)" : "Private note";
  if (on && chat.mode !== "note") note.click();
  if (!on && chat.mode === "note") reply.click();
}

export function createChat(conversation) {
  const pane = ui.chatTemplate.content.firstElementChild.cloneNode(true);
  const q = (cls) => pane.querySelector(`.${cls}`);
  const tab = h("button", { cls: "cc-tab", attrs: { type: "button", role: "tab", "aria-selected": "false" } }, [
    h("span", { cls: "cc-tab-dot", attrs: { "aria-hidden": "true" } }),
    h("span", { cls: "cc-tab-channel" }),
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
    deliveries: new Map(), // seq → {status, error} of messages to a provider's channel (message.delivery)
    els: {
      tab,
      pane,
      contact: q("js-contact"),
      channel: q("js-channel"),
      sub: q("js-sub"),
      important: q("js-important"),
      external: q("js-external"),
      switchButton: q("js-switch"),
      switchMenu: q("js-switch-menu"),
      linksButton: q("js-links"),
      webLinkButton: q("js-web-link"),
      linksMenu: q("js-links-menu"),
      transfer: q("js-transfer"),
      invite: q("js-invite"),
      assist: q("js-assist"),
      join: q("js-join"),
      teamMenu: q("js-team-menu"),
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
      count: q("js-count"),
      wa: q("js-wa"),
      waReason: q("js-wa-reason"),
      waForm: q("js-wa-form"),
      waTemplate: q("js-wa-template"),
      waVars: q("js-wa-vars"),
      waPreviewWrap: q("js-wa-preview-wrap"),
      waPreview: q("js-wa-preview"),
      waMissing: q("js-wa-missing"),
      waSend: q("js-wa-send"),
      composeBox: q("js-compose-box"),
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
    onAck: (el, frame) => {
      if (frame.channel) el.dataset.channel = frame.channel; // the channel it was stored for (protocol §2.3)
      setMeta(el, frame.created_at, delivered(chat, el));
    },
    onFailed: (el, frame) => {
      setMeta(el, null, "failed");
      el.title = frame.message || "";
      errorToast(frame.message);
      if (frame.code === "outside_whatsapp_window") refreshWhatsApp(chat); // offers the templates instead
    },
    onResumed: () => markRead(chat),
  });
  wireComposer(chat);
  wireControls(chat);
  wireLinks(chat);
  wireWebLink(chat);
  wireWhatsApp(chat);
  ui.tabs.appendChild(tab);
  ui.main.appendChild(pane);
  state.chats.set(chat.id, chat);
  fillDispositions(chat);
  return chat;
}

export function resume(chat) {
  chat.thread.resume({
    fail: (error) => {
      // No longer readable (closed and handed on while we were disconnected): show it as ended.
      if (error.code === "not_found" && state.chats.has(chat.id)) updateChat(chat, { status: "closed", access: "read" });
      else if (error.code !== "disconnected") errorToast(error.message); // the reconnect resumes again
    },
  });
}

/** Opens a conversation the agent may follow in a tab (from the inbox, or a call for help), read over HTTP
 * (where who may see it is decided), then focuses it. Throws what the server refused. */
export async function openConversation(conversationId) {
  const conversation = (await api(`/conversations/${conversationId}`)).conversation;
  const chat = state.chats.get(conversation.id) || createChat(conversation);
  updateChat(chat, conversation);
  resume(chat);
  activate(chat.id);
  renderHome();
  return chat;
}

export function removeChat(chat) {
  send({ type: "unsubscribe", conversation_id: chat.id });
  client.forget(chat.id);
  chat.els.tab.remove();
  chat.els.pane.remove();
  state.chats.delete(chat.id);
  const back = state.previous !== chat.id && (state.chats.has(state.previous) || state.previous === "inbox");
  if (state.active === chat.id) activate(back ? state.previous : "home");
  if (state.previous === chat.id) state.previous = "home";
  renderHome();
  updateTitle();
}

export function onAssigned(conversation) {
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
export function updateChat(chat, conversation) {
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
  const channel = CHANNELS[conv.channel] || CHANNELS.web;
  els.channel.textContent = channel;
  els.channel.dataset.channel = conv.channel || "web";
  els.channel.title = conv.channel_address ? `${channel}: ${conv.channel_address}` : channel;
  const tabChannel = els.tab.querySelector(".cc-tab-channel");
  tabChannel.textContent = conv.channel && conv.channel !== "web" ? channel : "";
  tabChannel.hidden = !tabChannel.textContent;
  const sub = [conv.queue ? `Queue: ${conv.queue.name}` : "", conv.widget ? conv.widget.name : "", `#${conv.id}`];
  els.sub.textContent = sub.filter(Boolean).join(" · ");
  els.important.setAttribute("aria-pressed", String(Boolean(conv.important)));
  els.important.classList.toggle("is-on", Boolean(conv.important));
  els.important.textContent = conv.important ? "★" : "☆";
  els.important.title = conv.important ? "Marked as important (click to unmark)" : "Mark as important";
  // Read-only (a supervisor following a colleague's chat, opened from the inbox): nothing here changes it.
  const readOnly = conv.access === "read";
  els.important.disabled = readOnly;
  els.disposition.hidden = readOnly;
  // Only a live web chat moves to SMS, WhatsApp or email, by someone who may write in it (one way).
  const movable = conv.channel === "web" && conv.status !== "closed" && conv.access !== "read" && conv.widget;
  els.switchButton.hidden = !movable;
  if (!movable) els.switchMenu.hidden = true;
  refreshLinks(chat); // "Send a link to continue on…": the assignee's live web chat, a channel on (protocol 1.20)
  refreshWebLink(chat); // "…on the web": the assignee's conversation on SMS, WhatsApp or email (protocol 1.21)
  // Transfer (the assignee) and Invite (anyone in the chat) while it is open (protocol 1.14).
  const working = conv.status === "open" && conv.access !== "read";
  els.transfer.hidden = !(working && conv.assignee && conv.assignee.id === state.me.user_id);
  els.invite.hidden = !working;
  if (!working) closeTeamMenu(chat);
  // Ask for help (anyone in the chat); a supervisor following it read-only whispers and may join (protocol 1.16).
  els.assist.hidden = !working;
  const following = conv.access === "read" && supervises() && conv.status === "open";
  els.join.hidden = !following;
  setWhisper(chat, conv.access === "read" && supervises() && conv.status !== "closed");
  const externalUrl = externalUrlOf(conv.widget);
  els.external.hidden = !externalUrl;
  els.external.title = externalUrl || "";
  els.disposition.value = conv.disposition_id ? String(conv.disposition_id) : "";
  els.olderWrap.hidden = !conv.has_history || chat.olderExhausted;
  if (conv.visitor_read_seq) chat.visitorReadSeq = Math.max(chat.visitorReadSeq, conv.visitor_read_seq);
  renderSide(chat);
  refreshCloseButton(chat);
  refreshSeen(chat);
  watchWhatsApp(chat);

  const closed = conv.status === "closed";
  els.composer.hidden = closed || (conv.access === "read" && !chat.whisper);
  els.ended.hidden = !closed;
  if (closed && !els.ended.textContent) els.ended.textContent = "This conversation is closed."; // opened closed
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
