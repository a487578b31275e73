// "+ New session" (seed 003): the agent writes first to a customer on SMS, WhatsApp or email. The dialog picks
// the channel, finds the customer among the contacts (or names a new one) and takes their account; the server
// checks it all (POST /console/api/sessions). The new session opens as the agent's tab; when the customer has
// one open on that channel already, that one opens instead (`session_exists`). Text only through textContent.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { openConversation } from "./chat.js";
import { api } from "./server.js";

const $ = (id) => document.getElementById(id);
const els = {
  button: $("cc-new-session-btn"),
  dialog: $("cc-new-session"),
  form: $("cc-ns-form"),
  connector: $("cc-ns-connector"),
  search: $("cc-ns-search"),
  contacts: $("cc-ns-contacts"),
  picked: $("cc-ns-picked"),
  pickedName: $("cc-ns-picked-name"),
  unpick: $("cc-ns-unpick"),
  nameWrap: $("cc-ns-name-wrap"),
  name: $("cc-ns-name"),
  account: $("cc-ns-account"),
  hint: $("cc-ns-hint"),
  error: $("cc-ns-error"),
  reopenWrap: $("cc-ns-reopen-wrap"),
  reopen: $("cc-ns-reopen"),
  cancel: $("cc-ns-cancel"),
  submit: $("cc-ns-submit"),
};

// Which identity kinds hold an account on each channel, the first one preferred (as the relay addresses them).
const ACCOUNT_KINDS = { sms: ["phone", "whatsapp"], whatsapp: ["whatsapp", "phone"], email: ["email"] };

const form = { connectors: [], contact: null, searchTimer: null, searchSeq: 0, busy: false };

function connector() {
  return form.connectors.find((c) => String(c.id) === els.connector.value) || null;
}

function showError(message) {
  els.error.textContent = message || "";
  els.error.hidden = !message;
}

/** The hint for the channel's account, the picked contact's address on it, and their last closed session. */
function refreshChannel() {
  const chosen = connector();
  els.hint.textContent = chosen ? chosen.account_hint : "";
  els.account.placeholder = chosen && chosen.kind === "email" ? "jane@example.com" : "+14155550123";
  const contact = form.contact;
  if (chosen && contact) {
    const kinds = ACCOUNT_KINDS[chosen.kind] || [];
    const known = kinds.map((kind) => contact.identities.find((i) => i.kind === kind)).find(Boolean);
    if (known) els.account.value = known.value;
  }
  const closed = chosen && contact ? contact.closed_sessions[chosen.kind] : null;
  els.reopen.dataset.conversationId = closed ? String(closed) : "";
  els.reopenWrap.hidden = !closed;
}

function pick(contact) {
  form.contact = contact;
  els.pickedName.textContent = contact ? contact.name || `Contact #${contact.id}` : "";
  els.picked.hidden = !contact;
  els.nameWrap.hidden = Boolean(contact);
  els.contacts.replaceChildren();
  if (contact) els.search.value = "";
  else els.account.value = "";
  refreshChannel();
}

function renderContacts(contacts) {
  els.contacts.replaceChildren(
    ...contacts.map((contact) => {
      const sub = contact.identities.map((i) => i.value).join(", ");
      const button = h("button", { attrs: { type: "button" } }, [
        h("span", { text: contact.name || `Contact #${contact.id}` }),
        h("span", { cls: "cc-ns-contact-sub", text: sub }),
      ]);
      button.addEventListener("click", () => pick(contact));
      return h("li", {}, [button]);
    }),
  );
}

async function search() {
  const query = els.search.value.trim();
  const seq = ++form.searchSeq;
  if (query.length < 2) {
    renderContacts([]);
    return;
  }
  try {
    const data = await api(`/sessions/contacts?q=${encodeURIComponent(query)}`);
    if (seq === form.searchSeq) renderContacts(data.contacts);
  } catch (error) {
    if (seq === form.searchSeq) showError(error.message);
  }
}

function open() {
  els.connector.replaceChildren(
    ...form.connectors.map((c) => h("option", { text: c.label, attrs: { value: String(c.id) } })),
  );
  els.search.value = "";
  els.name.value = "";
  els.account.value = "";
  showError("");
  pick(null);
  els.dialog.showModal();
  els.connector.focus();
}

async function done(call) {
  if (form.busy) return;
  form.busy = true;
  els.submit.disabled = true;
  showError("");
  try {
    const { conversation_id: conversationId } = await call();
    els.dialog.close();
    await openConversation(conversationId);
  } catch (error) {
    if (error.code === "session_exists" && error.data && error.data.conversation_id) {
      // The customer has a session open on this channel already: the agent is taken there.
      els.dialog.close();
      await openConversation(error.data.conversation_id).catch((failed) => errorToast(failed.message));
    } else {
      showError(error.message);
      els.account.focus();
    }
  } finally {
    form.busy = false;
    els.submit.disabled = false;
  }
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const chosen = connector();
  const json = { connector_id: chosen ? chosen.id : null, account: els.account.value };
  if (form.contact) json.contact_id = form.contact.id;
  else json.contact_name = els.name.value;
  done(() => api("/sessions", { method: "POST", json }));
});
els.reopen.addEventListener("click", () => {
  const id = els.reopen.dataset.conversationId;
  if (id) done(() => api(`/conversations/${id}/reopen`, { method: "POST" }));
});
els.search.addEventListener("input", () => {
  clearTimeout(form.searchTimer);
  form.searchTimer = setTimeout(search, 250);
});
els.connector.addEventListener("change", refreshChannel);
els.unpick.addEventListener("click", () => pick(null));
els.cancel.addEventListener("click", () => els.dialog.close());
els.button.addEventListener("click", open);

/** Shows "+ New session" when the tenant has a channel on to start one on (read once as the console loads). */
export async function loadSessionChannels() {
  try {
    form.connectors = (await api("/sessions/channels")).connectors;
  } catch (_) {
    form.connectors = [];
  }
  els.button.hidden = form.connectors.length === 0;
}
