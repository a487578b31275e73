// WhatsApp's 24-hour window in a chat's composer. More than 24 hours after the customer's last WhatsApp message
// WhatsApp takes no free text: the composer says why and offers the tenant's approved templates instead (pick
// one, fill in its numbered placeholders, read the text the customer will get, send). The server decides
// (GET /console/api/conversations/<id>/whatsapp, protocol §7); it is asked again when the customer writes, when
// the window runs out, and when a reply is refused with outside_whatsapp_window.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { messageNode } from "./messages.js";
import { api } from "./server.js";
import { state } from "./state.js";

const PLACEHOLDER = /\{\{([1-9][0-9]*)\}\}/g;
const REFRESH_DELAY_MS = 250; // a replay of many customer messages asks once
const TIMER_MAX_MS = 2 ** 31 - 1;

function writable(chat) {
  return chat.conv.channel === "whatsapp" && chat.conv.status !== "closed" && chat.conv.access !== "read";
}

/** After a conversation object was applied: asks the server when the chat became (or stopped being) a
 * writable WhatsApp chat. */
export function watchWhatsApp(chat) {
  const key = writable(chat) ? `${chat.conv.status}|${chat.conv.access}` : "";
  if (key === chat.waKey) return;
  chat.waKey = key;
  refreshWhatsApp(chat);
}

/** Asks the server where this WhatsApp chat stands now (soon, once for a burst of calls). */
export function refreshWhatsApp(chat) {
  clearTimeout(chat.waTimer);
  if (!writable(chat)) {
    clearTimeout(chat.waWindowTimer);
    chat.wa = null;
    showWhatsApp(chat);
    return;
  }
  chat.waTimer = setTimeout(() => loadWhatsApp(chat), REFRESH_DELAY_MS);
}

async function loadWhatsApp(chat) {
  chat.waLoads = (chat.waLoads || 0) + 1;
  const load = chat.waLoads;
  let data;
  try {
    data = await api(`/conversations/${chat.id}/whatsapp`);
  } catch (error) {
    if (load === chat.waLoads && error.code !== "not_found") errorToast(error.message);
    return;
  }
  if (load !== chat.waLoads || !state.chats.has(chat.id) || !writable(chat)) return;
  chat.wa = data;
  renderWhatsApp(chat);
  clearTimeout(chat.waWindowTimer);
  if (data.window.open && data.window.ends_at) {
    // Asked again once the window has run out (on the server's clock), so the composer never offers free text
    // that would be refused.
    const left = Date.parse(data.window.ends_at) - (Date.now() + state.serverOffsetMs) + 1000;
    chat.waWindowTimer = setTimeout(() => loadWhatsApp(chat), Math.min(Math.max(left, 1000), TIMER_MAX_MS));
  }
}

function windowClosed(chat) {
  return Boolean(chat.wa) && (!chat.wa.window.open || chat.wa.awaiting_customer);
}

/** Replies (not notes) outside the window go as templates: the panel replaces the text box. */
export function showWhatsApp(chat) {
  const { wa, composeBox } = chat.els;
  const active = windowClosed(chat) && chat.mode !== "note";
  wa.hidden = !active;
  composeBox.hidden = active;
}

function renderWhatsApp(chat) {
  const { reason, templates = [], awaiting_customer: awaiting } = chat.wa;
  const { waReason, waForm, waTemplate } = chat.els;
  waReason.textContent = reason;
  if (!templates.length && !awaiting) {
    waReason.textContent = `${reason} No WhatsApp templates are set up yet: an admin adds them in Settings → Channels → WhatsApp templates.`;
  }
  waForm.hidden = templates.length === 0;
  const current = waTemplate.value;
  waTemplate.replaceChildren(
    h("option", { text: "Choose a template…", attrs: { value: "" } }),
    ...templates.map((t) => h("option", { text: `${t.name} (${t.language})`, attrs: { value: String(t.id) } })),
  );
  waTemplate.value = templates.some((t) => String(t.id) === current) ? current : "";
  const template = selected(chat);
  const shown = template ? `${template.id}:${template.body}` : "";
  if (shown !== chat.waShown) buildVariables(chat); // a template changed: its inputs again; else kept as typed
  showWhatsApp(chat);
}

function selected(chat) {
  const id = Number(chat.els.waTemplate.value);
  return ((chat.wa && chat.wa.templates) || []).find((template) => template.id === id) || null;
}

function buildVariables(chat) {
  const template = selected(chat);
  chat.waShown = template ? `${template.id}:${template.body}` : "";
  const inputs = [];
  for (let n = 1; template && n <= template.variables; n += 1) {
    const attrs = { type: "text", maxlength: "200", autocomplete: "off", "data-var": String(n), "aria-label": `{{${n}}}` };
    const input = h("input", { attrs });
    input.addEventListener("input", () => preview(chat));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        sendTemplate(chat);
      }
    });
    inputs.push(h("label", { cls: "cc-wa-var" }, [h("span", { text: `{{${n}}}` }), input]));
  }
  chat.els.waVars.replaceChildren(...inputs);
  preview(chat);
}

function values(chat) {
  const inputs = chat.els.waVars.querySelectorAll("input");
  return Object.fromEntries([...inputs].map((input) => [input.dataset.var, input.value.trim()]));
}

/** The text the customer will read: each {{n}} filled with its value (an empty one stays as typed). */
function rendered(template, filled) {
  return template.body.replace(PLACEHOLDER, (whole, n) => filled[n] || whole);
}

function preview(chat) {
  const { waPreviewWrap, waPreview, waSend, waMissing } = chat.els;
  const template = selected(chat);
  waPreviewWrap.hidden = !template;
  waSend.hidden = !template;
  waMissing.textContent = "";
  if (!template) return;
  const filled = values(chat);
  waPreview.textContent = rendered(template, filled);
  const missing = Object.keys(filled)
    .filter((n) => !filled[n])
    .map((n) => `{{${n}}}`);
  waSend.disabled = missing.length > 0;
  if (missing.length) waMissing.textContent = `Fill in ${missing.join(", ")} to send.`;
}

function sendTemplate(chat) {
  const template = selected(chat);
  if (!template || chat.els.waSend.disabled) return;
  const filled = values(chat);
  const el = messageNode(
    chat,
    {
      sender: "agent",
      sender_user: { id: state.me.user_id, name: state.me.name },
      private: false,
      body: rendered(template, filled),
      created_at: new Date().toISOString(),
    },
    { status: "sending" },
  );
  // A message.send with a template instead of a body: acked, refused and resent like any other (protocol §4).
  chat.thread.send({ conversation_id: chat.id, template: { id: template.id, variables: filled } }, el);
  chat.els.waTemplate.value = "";
  buildVariables(chat);
}

export function wireWhatsApp(chat) {
  chat.els.waTemplate.addEventListener("change", () => {
    buildVariables(chat);
    const first = chat.els.waVars.querySelector("input");
    if (first) first.focus();
  });
  chat.els.waSend.addEventListener("click", () => sendTemplate(chat));
}
