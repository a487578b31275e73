// Frames of the agent socket (protocol §4) that are not a thread's: each goes to the module of its concept.

import { beep, errorToast, toast } from "./attention.js";
import { fillDispositions } from "./chat-controls.js";
import { createChat, onAssigned, openConversation, removeChat, resume, updateChat } from "./chat.js";
import { onTyping } from "./composer.js";
import { onDelivery, refreshSeen } from "./messages.js";
import { addOffer, onWaitingPreview, removeOffer } from "./offers.js";
import { inboxReconnected, onInboxChanged } from "./inbox.js";
import { reasonName, setPauseReasons, setPresence, showMissedNotice } from "./presence.js";
import { state, ui } from "./state.js";
import { renderHome } from "./tabs.js";
import { setTemplates } from "./templates.js";
import { renderWaiting } from "./waiting.js";

export function onFrame(frame) {
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
    case "message.delivery": {
      const chat = state.chats.get(frame.conversation_id);
      if (chat) onDelivery(chat, frame);
      break;
    }
    case "conversation.assigned":
      onAssigned(frame.conversation);
      break;
    case "assistance.requested":
      onAssistanceRequested(frame);
      break;
    case "conversation.unassigned": {
      // Handed on (a transfer) or left to the colleague who goes on with it: the tab goes.
      const chat = state.chats.get(frame.conversation_id);
      if (chat) removeChat(chat);
      break;
    }
    case "offer.new":
      addOffer(frame.offer, { alert: true });
      break;
    case "offer.withdrawn":
      removeOffer(frame.conversation_id);
      if (frame.reason === "taken") toast({ title: "Taken by a colleague", body: "That chat was answered." });
      if (frame.reason === "missed") showMissedNotice(); // the server paused us: its agent.presence follows
      break;
    case "waiting.added":
      state.waiting.set(frame.item.conversation_id, frame.item);
      renderWaiting();
      onInboxChanged(frame.item.conversation_id); // a chat started without a message has had no inbox.changed
      break;
    case "inbox.changed":
      onInboxChanged(frame.conversation_id);
      break;
    case "waiting.preview":
      onWaitingPreview(frame);
      break;
    case "waiting.removed":
      state.waiting.delete(frame.conversation_id);
      renderWaiting();
      break;
    case "state.sync":
      onStateSync(frame);
      break;
    case "agent.presence":
      if (frame.user_id === state.me.user_id) setPresence(frame.presence, frame.pause_reason);
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
  setPauseReasons(frame.pause_reasons || []);
  setPresence(frame.me.presence, frame.me.pause_reason);
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

  replaceLiveState(frame, { alertNewOffers: false });
  renderHome();
  inboxReconnected();
}

/** The server found this console's offers, waiting list or presence behind the database (an event lost on
 * the way) and sends them whole: offers it never showed ring like new ones, vanished ones go quietly. */
function onStateSync(frame) {
  // The pause reason, when the frame has none, stays the one shown if the presence is unchanged.
  const same = frame.presence === state.me.presence;
  const reason = "pause_reason" in frame ? reasonName(frame.pause_reason) : same ? state.me.pauseReasonName : null;
  setPresence(frame.presence, reason);
  replaceLiveState(frame, { alertNewOffers: true });
}

function replaceLiveState(frame, { alertNewOffers }) {
  const offered = new Set((frame.offers || []).map((offer) => offer.conversation_id));
  for (const conversationId of [...state.offers.keys()]) {
    if (!offered.has(conversationId)) removeOffer(conversationId);
  }
  for (const offer of frame.offers || []) {
    const known = state.offers.has(offer.conversation_id);
    if (known && alertNewOffers) continue; // a sync keeps the card (and its timers) the agent is looking at
    addOffer(offer, { alert: alertNewOffers });
  }
  state.waiting.clear();
  for (const item of frame.waiting || []) state.waiting.set(item.conversation_id, item);
  renderWaiting();
}

/** Error frames neither a thread (a refused send) nor a request's `fail` took. */
function onError(frame) {
  if (frame.message) errorToast(frame.message);
}

/** A colleague asks for help (protocol 1.16): an alert that stays until dismissed or followed, and the chat
 * opens read-only on a click (the supervisor reads it live, whispers, and may join). */
function onAssistanceRequested(frame) {
  beep(2);
  const where = frame.queue ? ` (${frame.queue})` : "";
  toast({
    title: `${frame.agent_name} asks for help`,
    body: `Chat with ${frame.contact_name}${where}. Click to open it.`,
    sticky: true,
    onClick: () => openConversation(frame.conversation_id).catch((error) => errorToast(error.message)),
  });
}
