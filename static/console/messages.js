// A chat's log: message elements, receipts, new-message alerts, read markers, older conversations.

import { clock, formatBytes, h, scrollToEnd as scrollLogToEnd } from "../js/dom.js";
import { errorToast, updateTitle } from "./attention.js";
import { updateChat } from "./chat.js";
import { hidePeerTyping } from "./composer.js";
import { addresses, contactName, dateTime } from "./format.js";
import { linksSentNode } from "./links.js";
import { remindOfMessage } from "./reminders.js";
import { api, send } from "./server.js";
import { state } from "./state.js";
import { renderHome } from "./tabs.js";
import { refreshWhatsApp } from "./whatsapp.js";

export function scrollToEnd(chat) {
  scrollLogToEnd(chat.els.scroll);
}

const CHANNEL_NAMES = { sms: "SMS", whatsapp: "WhatsApp", email: "email", web: "web chat" };

function eventText(chat, message) {
  const data = message.event_data || {};
  if (message.event === "agent.joined" && data.agent_name) return [data.agent_name, " joined the chat"];
  if (message.event === "conversation.closed") {
    if (data.by === "visitor") return [contactName(chat.conv.contact), " ended the chat"];
    if (data.agent_name) return [data.agent_name, " closed the chat"];
  }
  if (message.event === "conversation.switched") {
    const where = ` moved the chat to ${CHANNEL_NAMES[data.to] || data.to} (${data.address})`;
    if (data.by === "visitor") return [contactName(chat.conv.contact), where];
    if (data.by === "agent" && data.agent_name) return [data.agent_name, where];
    if (data.by === "system") return ["Connection lost:", ` the chat moved to ${CHANNEL_NAMES[data.to] || data.to} (${data.address}) by itself`];
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

// What Switchboard itself sent to the customer's phone or mailbox (a switch's introduction; the replies a
// WhatsApp template could not carry) is shown as a message, with its delivery.
const RELAYED_EVENTS = {
  "channel.introduction": "Introduction (sent automatically)",
  "channel.held_replies": "Replies the visitor had not seen (sent automatically)",
};

export function messageNode(chat, message, { status, history } = {}) {
  const introduction = message.sender === "system" && Object.hasOwn(RELAYED_EVENTS, message.event || "");
  if (message.sender === "system" && message.event === "link_request.sent") {
    const li = linksSentNode(message);
    li.appendChild(h("span", { cls: "cc-muted", text: ` · ${clock(message.created_at)}` }));
    return li;
  }
  if (message.sender === "system" && !introduction) {
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
  if (introduction) who = RELAYED_EVENTS[message.event];
  li.appendChild(h("span", { cls: "cc-msg-who", text: who }));
  if (message.body) li.appendChild(h("div", { cls: "cc-bubble", text: message.body }));
  for (const attachment of message.attachments || []) {
    li.appendChild(attachmentNode(attachment, message.localPreviews && message.localPreviews[attachment.id]));
  }
  li.appendChild(h("span", { cls: "cc-msg-meta" }));
  // The channel it went by: a web reply stays "Seen" after the chat moved on to SMS or WhatsApp.
  if (message.channel) li.dataset.channel = message.channel;
  if (!fromVisitor && !message.private && message.channel && message.channel !== "web") {
    // An agent's message to an SMS, WhatsApp or email customer: how far the provider got with it.
    li.dataset.delivery = message.delivery_status || "pending";
    if (message.delivery_error) li.dataset.deliveryError = message.delivery_error;
    setMeta(li, message.created_at, "delivery");
  } else {
    setMeta(li, message.created_at, mine ? status : null);
  }
  return li;
}

const RECEIPTS = { sending: "Sending…", sent: "Sent", seen: "Seen", saved: "Saved", failed: "Not sent" };
const DELIVERY = {
  pending: "Queued",
  sending: "Sent to provider",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Not delivered",
};

/** A message's time and receipt: a local send state, or ("delivery") how far the provider got with it. */
export function setMeta(li, createdAt, status) {
  const meta = li.querySelector(".cc-msg-meta");
  if (!meta) return;
  if (createdAt) li.dataset.time = createdAt;
  const viaProvider = status === "delivery";
  const label = viaProvider ? DELIVERY[li.dataset.delivery] || "" : RECEIPTS[status] || "";
  meta.textContent = label ? `${clock(li.dataset.time)} · ${label}` : clock(li.dataset.time);
  if (status) li.dataset.status = status;
  const failed = status === "failed" || (viaProvider && li.dataset.delivery === "failed");
  li.classList.toggle("is-failed", failed);
  let reason = li.querySelector(".cc-msg-reason");
  if (viaProvider && failed && li.dataset.deliveryError) {
    if (!reason) {
      reason = h("span", { cls: "cc-msg-reason" });
      meta.after(reason);
    }
    reason.textContent = li.dataset.deliveryError;
  } else if (reason) {
    reason.remove();
  }
}

/** `message.delivery`: the provider got further with one of this chat's messages (or failed it). Kept by seq
 * too, for a message whose ack has not placed it yet. */
export function onDelivery(chat, frame) {
  chat.deliveries.set(frame.seq, { status: frame.delivery_status, error: frame.delivery_error || "" });
  const li = chat.els.log.querySelector(`li[data-seq="${frame.seq}"]`);
  if (li) applyDelivery(chat, li);
}

function applyDelivery(chat, li) {
  const known = chat.deliveries.get(Number(li.dataset.seq));
  if (known) {
    li.dataset.delivery = known.status;
    li.dataset.deliveryError = known.error;
  }
  setMeta(li, null, "delivery");
}

export function refreshSeen(chat) {
  for (const li of chat.els.log.querySelectorAll("li[data-status][data-seq]")) {
    if (li.dataset.status === "failed") continue;
    if (li.dataset.status === "delivery") {
      applyDelivery(chat, li);
      continue;
    }
    const status = delivered(chat, li);
    if (li.dataset.status !== status) setMeta(li, null, status);
  }
}

/** The receipt of an own stored message: a note is only saved (the visitor never gets it); a message to a
 * provider's channel shows how far the provider got ("delivery"). */
export function delivered(chat, li) {
  if (li.classList.contains("is-note")) return "saved";
  const channel = li.dataset.channel || chat.conv.channel; // a message still sending goes by the chat's
  if (channel && channel !== "web") {
    if (!li.dataset.delivery) li.dataset.delivery = "pending";
    const known = chat.deliveries.get(Number(li.dataset.seq));
    if (known) {
      li.dataset.delivery = known.status;
      li.dataset.deliveryError = known.error;
    }
    return "delivery";
  }
  return Number(li.dataset.seq) <= chat.visitorReadSeq ? "seen" : "sent";
}

/** After the thread placed a new message (its own copy of a pending one included). */
export function onMessageNew(chat, message, li, { replay, stick }) {
  if (li.dataset.status) setMeta(li, null, delivered(chat, li));
  if (message.sender === "visitor") hidePeerTyping(chat);
  if (message.sender === "visitor" && message.channel === "whatsapp") refreshWhatsApp(chat); // the window opens
  if (message.event === "conversation.closed" && chat.conv.status !== "closed") {
    updateChat(chat, { status: "closed" });
    if (!state.chats.has(chat.id)) return;
  }
  // A session reopened after it closed (seed 003): a replay meets the close first, then this.
  if (message.event === "session.reopened" && chat.conv.status === "closed") updateChat(chat, { status: "open" });
  if (stick || !replay) scrollToEnd(chat);
  if (!replay && message.sender === "visitor") notifyNewMessage(chat, message);
  if (!replay && message.sender === "visitor" && message.channel && message.channel !== "web") refreshContact(chat);
  markRead(chat);
  renderHome();
}

/** A customer's message on SMS, WhatsApp or email proves the address it came from: when the side panel still shows
 * an unverified one, it is read again (the conversation's state events do not carry the contact). */
function refreshContact(chat) {
  if (!addresses(chat.conv.contact).some((identity) => !identity.verified)) return;
  api(`/conversations/${chat.id}`)
    .then((answer) => {
      if (answer.conversation && answer.conversation.contact) updateChat(chat, { contact: answer.conversation.contact });
    })
    .catch(() => {}); // the panel stays as it was; the next snapshot brings it
}

/** A visitor's message in a chat the agent is not looking at: flash its tab, and the agent's reminder (a toast
 * and a beep in the every_message mode: reminders.js). */
function notifyNewMessage(chat, message) {
  const looking = state.active === chat.id && document.visibilityState === "visible";
  if (looking) return;
  chat.unread = true;
  chat.els.tab.classList.add("is-flashing", "is-unread");
  remindOfMessage(chat, message);
  updateTitle();
}

export function markRead(chat) {
  clearTimeout(chat.readTimer);
  // Batched: a replay of many messages sends one read marker.
  chat.readTimer = setTimeout(() => {
    const visible = state.active === chat.id && document.visibilityState === "visible";
    const { lastSeq, resumed } = chat.thread;
    const writes = chat.conv.status !== "closed" && chat.conv.access !== "read"; // the agents' marker: theirs only
    if (visible && resumed && writes && lastSeq > chat.readSent) {
      chat.readSent = lastSeq;
      send({ type: "read", conversation_id: chat.id, seq: lastSeq });
    }
  }, 250);
}

export async function loadOlder(chat) {
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
