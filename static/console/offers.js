// Incoming chats offered to this agent (the column beside the panes), and accepting a chat.

import { h } from "../js/dom.js";
import { beep, errorToast, updateTitle } from "./attention.js";
import { contactName, contactUrl, counter, countdown, externalUrlOf, identityLine } from "./format.js";
import { closeOfferNotification, notifyOffer } from "./notify.js";
import { request } from "./server.js";
import { state, ui } from "./state.js";
import { renderWaiting } from "./waiting.js";

export function addOffer(offer, { alert }) {
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
    h("p", { cls: "cc-offer-kicker", text: offerKicker(offer) }),
    name,
    identity ? h("p", { cls: "cc-offer-details", text: identity }) : null,
    offer.transferred_by ? h("p", { cls: "cc-offer-details cc-offer-transfer", text: `Transferred by ${offer.transferred_by}` }) : null,
    preview,
    h("dl", { cls: "cc-offer-times" }, [
      h("div", {}, [h("dt", { text: "Queue" }), h("dd", { text: offer.queue ? offer.queue.name : "—" })]),
      h("div", {}, [h("dt", { text: "Waiting" }), h("dd", {}, [counter({ since: offer.waiting_since })])]),
      h("div", {}, [h("dt", { text: "Notified" }), h("dd", {}, [counter({ local: receivedAt })])]),
    ]),
    answerWithin(offer),
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
  if (alert) {
    beep(2);
    notifyOffer(offer);
  }
}

function offerKicker(offer) {
  if (offer.started_offline) return "Offline message";
  return offer.transferred_by ? "Transferred chat" : "Incoming chat";
}

/** "Answer within 0:27": the offer goes to the next agent at `expires_at` (none when the queue has no limit). */
function answerWithin(offer) {
  if (!offer.expires_at || Number.isNaN(Date.parse(offer.expires_at))) return null;
  return h("p", { cls: "cc-offer-countdown", attrs: { role: "timer" } }, [
    document.createTextNode("Answer within "),
    countdown(offer.expires_at),
  ]);
}

function setOfferPreview(node, preview) {
  node.textContent = preview ? `“${preview}”` : "";
  node.hidden = !preview;
}

/** The first visitor message of a waiting chat, arrived after its offer or waiting item was made. */
export function onWaitingPreview(frame) {
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

export function removeOffer(conversationId) {
  const entry = state.offers.get(conversationId);
  if (!entry) return;
  entry.el.remove();
  state.offers.delete(conversationId);
  closeOfferNotification(conversationId);
  updateTitle();
}

export function acceptChat(conversationId, buttons = []) {
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
