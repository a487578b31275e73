// Desktop notifications of new chat offers and of the agent's reminders while the console's tab is hidden, and the
// control that asks the browser for them (shown only while it has not been asked yet).

import { contactName } from "./format.js";
import { ui } from "./state.js";

const supported = typeof window.Notification === "function";
const shown = new Map(); // conversation id -> the Notification of its offer

function refreshControl() {
  ui.notifyWrap.hidden = !(supported && Notification.permission === "default");
}

ui.notifyBtn.addEventListener("click", async () => {
  ui.notifyBtn.disabled = true;
  try {
    await Notification.requestPermission();
  } catch {
    // Refused to ask (no user gesture, an embedding that forbids it): the permission stays as it was.
  } finally {
    ui.notifyBtn.disabled = false;
    refreshControl();
  }
});

refreshControl();
// Allowed or blocked later in the browser's own settings: the control follows.
navigator.permissions
  ?.query({ name: "notifications" })
  .then((status) => status.addEventListener("change", refreshControl))
  .catch(() => {});

/** A new offer (offer.new, or one a state.sync brought) while the agent looks elsewhere. */
export function notifyOffer(offer) {
  if (!supported || Notification.permission !== "granted" || !document.hidden) return;
  const body = [contactName(offer.contact), offer.queue ? offer.queue.name : ""].filter(Boolean).join(" · ");
  let notification;
  try {
    notification = new Notification("New chat offer", { body, tag: `offer-${offer.offer_id}` });
  } catch {
    return; // some browsers (Chrome on Android) allow notifications only from a service worker
  }
  notification.onclick = () => {
    window.focus();
    notification.close();
  };
  shown.set(offer.conversation_id, notification);
}

/** The offer is gone (accepted, taken, withdrawn): its notification would only mislead now. */
export function closeOfferNotification(conversationId) {
  const notification = shown.get(conversationId);
  if (!notification) return;
  shown.delete(conversationId);
  notification.close();
}

/** A reminder of a chat (reminders.js) while the console's tab is hidden; one per chat at a time (its tag). */
export function notifyReminder({ tag, title, body, onClick }) {
  if (!supported || Notification.permission !== "granted") return;
  let notification;
  try {
    notification = new Notification(title, { body, tag });
  } catch {
    return;
  }
  notification.onclick = () => {
    window.focus();
    notification.close();
    onClick();
  };
}
