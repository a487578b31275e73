// The tabs and panes, and the Home screen's list of open chats.

import { h } from "../js/dom.js";
import { updateTitle } from "./attention.js";
import { contactName } from "./format.js";
import { inboxShown } from "./inbox.js";
import { markRead, scrollToEnd } from "./messages.js";
import { state, ui } from "./state.js";

// The panes that are always there, beside one per chat.
const FIXED = { home: () => [ui.homeTab, ui.homePane], inbox: () => [ui.inboxTab, ui.inboxPane] };

export function activate(paneId) {
  if (paneId !== state.active) state.previous = state.active;
  state.active = paneId;
  for (const [id, elements] of Object.entries(FIXED)) {
    const [tab, pane] = elements();
    tab.classList.toggle("is-active", paneId === id);
    tab.setAttribute("aria-selected", String(paneId === id));
    pane.classList.toggle("is-active", paneId === id);
  }
  inboxShown(paneId === "inbox");
  for (const chat of state.chats.values()) {
    const on = chat.id === paneId;
    chat.els.tab.classList.toggle("is-active", on);
    chat.els.tab.setAttribute("aria-selected", String(on));
    chat.els.pane.classList.toggle("is-active", on);
    if (on) {
      chat.unread = false;
      chat.els.tab.classList.remove("is-flashing", "is-unread");
      scrollToEnd(chat);
      markRead(chat);
      chat.els.text.focus();
    }
  }
  updateTitle();
}

ui.homeTab.addEventListener("click", () => activate("home"));
ui.inboxTab.addEventListener("click", () => activate("inbox"));

export function renderHome() {
  const chats = [...state.chats.values()];
  ui.myChats.replaceChildren(
    ...chats.map((chat) => {
      const last = [...chat.thread.bySeq.entries()].sort((a, b) => b[0] - a[0])[0];
      const preview = last ? last[1].querySelector(".cc-bubble")?.textContent || "" : "";
      const item = h("li", { cls: "cc-list-item", attrs: { tabindex: "0", role: "button" } }, [
        h("div", { cls: "cc-item-main" }, [
          h("div", { cls: "cc-item-title", text: contactName(chat.conv.contact) }),
          h("div", { cls: "cc-item-sub", text: [chat.conv.status, preview].filter(Boolean).join(" · ") }),
        ]),
      ]);
      item.addEventListener("click", () => activate(chat.id));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter") activate(chat.id);
      });
      return item;
    }),
  );
  ui.myChatsEmpty.hidden = chats.length > 0;
}
