// Canned templates (placeholders filled from the chat, unfilled ones pointed out) and the emoji menu.

import { h } from "../js/dom.js";
import { insertAtCursor } from "./composer.js";
import { state } from "./state.js";

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

export function setTemplates(templates) {
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

export function refreshUnfilled(chat, { refused = false } = {}) {
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
export function selectUnfilled(chat) {
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

export function closeMenus(chat) {
  for (const [btn, menu] of [
    [chat.els.templatesBtn, chat.els.templatesMenu],
    [chat.els.emojiBtn, chat.els.emojiMenu],
  ]) {
    menu.hidden = true;
    btn.setAttribute("aria-expanded", "false");
  }
}

export function toggleMenu(chat, btn, menu) {
  const open = menu.hidden;
  closeMenus(chat);
  menu.hidden = !open;
  btn.setAttribute("aria-expanded", String(open));
  if (open) menu.querySelector("button")?.focus();
}

export function fillTemplatesMenu(chat) {
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
