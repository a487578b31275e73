// The waiting list (top bar popover and Home), and closing popovers on an outside click or Escape.

import { h } from "../js/dom.js";
import { counter } from "./format.js";
import { acceptChat } from "./offers.js";
import { state, ui } from "./state.js";
import { closeMenus } from "./templates.js";

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

export function renderWaiting() {
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
