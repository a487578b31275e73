// The inbox: every conversation this agent may see (protocol §7 `GET /console/api/inbox`), filtered, newest
// activity first, with unread counts. Live while its pane is shown: the socket then hears `inbox.changed` (§4
// `inbox.watch`) and the named rows are read back from the server, which decides who sees what. A row opens
// the conversation's tab (read-only for a supervisor taking no part); one the agent only sees as history opens
// the contact's page, where the console shows a contact's conversations.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { CHANNELS, openConversation } from "./chat.js";
import { contactName, contactUrl, dateTime, identityLine } from "./format.js";
import { acceptChat } from "./offers.js";
import { api, send } from "./server.js";
import { state, ui } from "./state.js";
import { activate } from "./tabs.js";

const REFRESH_DELAY_MS = 150; // changes that come together are read back in one request
const REFRESH_MAX_IDS = 50; // the endpoint's limit: past it the whole list is read again
const STATUS_LABELS = { waiting: "Waiting", open: "Open", closed: "Closed" };

const inbox = {
  shown: false,
  filters: { assignee: "all", channel: "", status: "active" },
  rows: new Map(), // conversation id → row
  nextCursor: null,
  boundary: null, // the last row of the last page read: a changed row below it comes with "Load more"
  generation: 0, // grows with every reload: an answer to an older question is dropped
  pending: new Set(), // ids `inbox.changed` named, not read back yet
  timer: null,
  busy: false,
};

/** The Inbox tab was shown or left (tabs.js): live only while it is on screen. */
export function inboxShown(on) {
  if (on === inbox.shown) return;
  inbox.shown = on;
  send({ type: "inbox.watch", watch: on });
  if (on) reload();
  else {
    clearTimeout(inbox.timer);
    inbox.timer = null;
    inbox.pending.clear();
  }
}

/** A new socket (hello) watches nothing yet, and changes may have been missed while it was away. */
export function inboxReconnected() {
  if (!inbox.shown) return;
  send({ type: "inbox.watch", watch: true });
  reload();
}

export function onInboxChanged(conversationId) {
  if (!inbox.shown) return;
  inbox.pending.add(conversationId);
  schedule();
}

function schedule() {
  if (inbox.timer || inbox.busy || !inbox.pending.size) return;
  inbox.timer = setTimeout(refresh, REFRESH_DELAY_MS);
}

function query(extra = {}) {
  return new URLSearchParams({ ...inbox.filters, ...extra }).toString();
}

async function fetchPage(extra) {
  const generation = inbox.generation;
  inbox.busy = true;
  try {
    const data = await api(`/inbox?${query(extra)}`);
    ui.inboxError.hidden = true;
    return generation === inbox.generation ? data : null;
  } catch (error) {
    ui.inboxError.textContent = `The inbox could not be read: ${error.message}`;
    ui.inboxError.hidden = false;
    return null;
  } finally {
    inbox.busy = false;
    schedule();
  }
}

/** Reads the first page again (a filter changed, the tab was shown, the socket reconnected). */
async function reload() {
  inbox.generation += 1;
  inbox.pending.clear();
  const data = await fetchPage({});
  if (!data) return;
  inbox.rows.clear();
  addPage(data);
}

async function loadMore() {
  if (!inbox.nextCursor) return;
  ui.inboxMore.disabled = true;
  const data = await fetchPage({ cursor: inbox.nextCursor });
  ui.inboxMore.disabled = false;
  if (data) addPage(data);
}

function addPage(data) {
  for (const row of data.conversations) inbox.rows.set(row.id, row);
  const last = data.conversations[data.conversations.length - 1];
  if (last) inbox.boundary = last;
  inbox.nextCursor = data.next_cursor;
  render();
}

/** Reads back the rows `inbox.changed` named: each comes back as it is now, or not at all when the agent no
 * longer sees it under these filters (it leaves the list). */
async function refresh() {
  inbox.timer = null;
  if (inbox.pending.size > REFRESH_MAX_IDS) {
    reload();
    return;
  }
  const ids = [...inbox.pending];
  inbox.pending.clear();
  const data = await fetchPage({ ids: ids.join(",") });
  if (!data) return;
  const fresh = new Map(data.conversations.map((row) => [row.id, row]));
  for (const id of ids) {
    const row = fresh.get(id);
    if (row && withinLoaded(row)) inbox.rows.set(id, row);
    else inbox.rows.delete(id);
  }
  render();
}

/** Newest activity first, then the higher id (the server's order). */
function compare(a, b) {
  return Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at) || b.id - a.id;
}

function withinLoaded(row) {
  return !inbox.nextCursor || !inbox.boundary || compare(row, inbox.boundary) <= 0;
}

function render() {
  const rows = [...inbox.rows.values()].sort(compare);
  ui.inboxList.replaceChildren(...rows.map(rowNode));
  ui.inboxEmpty.hidden = rows.length > 0;
  ui.inboxMore.hidden = !inbox.nextCursor;
}

function rowNode(row) {
  const name = contactName(row.contact);
  const who = [row.assignee ? `Assigned to ${row.assignee.name}` : "Unassigned", row.queue ? row.queue.name : ""];
  const side = h("div", { cls: "cc-inbox-side" }, [
    h("span", { cls: "cc-inbox-time", text: dateTime(row.last_activity_at) }),
    row.unread
      ? h("span", { cls: "cc-inbox-unread", text: String(row.unread), attrs: { title: `${row.unread} unread` } })
      : null,
  ]);
  if (row.status === "waiting" && !row.assignee && !state.chats.has(row.id)) side.appendChild(acceptButton(row));
  const item = h(
    "li",
    {
      cls: `cc-inbox-row${row.unread ? " has-unread" : ""}`,
      attrs: { tabindex: "0", role: "button", "data-conversation": String(row.id), title: openHint(row) },
    },
    [
      h("div", { cls: "cc-item-main" }, [
        h("div", { cls: "cc-inbox-head" }, [
          h("span", { cls: `cc-item-title${row.important ? " is-important" : ""}`, text: name }),
          h("span", { cls: "cc-channel", text: CHANNELS[row.channel] || row.channel, attrs: { "data-channel": row.channel } }),
          h("span", { cls: "cc-inbox-status", text: STATUS_LABELS[row.status] || row.status, attrs: { "data-status": row.status } }),
        ]),
        h("div", { cls: "cc-item-sub cc-inbox-preview", text: row.preview || identityLine(row.contact) || "" }),
        h("div", { cls: "cc-item-sub", text: [...who, `#${row.id}`].filter(Boolean).join(" · ") }),
      ]),
      side,
    ],
  );
  item.addEventListener("click", () => openRow(row));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === item) openRow(row);
  });
  return item;
}

function acceptButton(row) {
  const accept = h("button", { cls: "cc-btn cc-btn-ok cc-btn-sm", text: "Accept", attrs: { type: "button" } });
  accept.addEventListener("click", (event) => {
    event.stopPropagation(); // accepting opens the tab (conversation.assigned), not the row's own action
    acceptChat(row.id, [accept]);
  });
  return accept;
}

function openHint(row) {
  if (state.chats.has(row.id)) return "Go to its tab";
  if (row.access === "history") return "You take no part in this conversation: opens the contact's history";
  return row.access === "read" ? "Open it read-only in a tab" : "Open it in a tab";
}

/** Focuses the row's tab, or opens one (a conversation the agent takes part in, or any for a supervisor, who
 * follows it read-only); an agent taking no part sees it as the contact's history, on the contact's page. */
async function openRow(row) {
  const open = state.chats.get(row.id);
  if (open) {
    activate(open.id);
    return;
  }
  if (row.access === "history") {
    window.open(contactUrl(row.contact.id), "_blank", "noopener");
    return;
  }
  try {
    await openConversation(row.id);
  } catch (error) {
    errorToast(error.message);
    onInboxChanged(row.id); // no longer this agent's: the row goes or changes
  }
}

for (const button of ui.inboxPane.querySelectorAll(".js-inbox-assignee")) {
  button.addEventListener("click", () => {
    inbox.filters.assignee = button.dataset.assignee;
    for (const other of ui.inboxPane.querySelectorAll(".js-inbox-assignee")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    reload();
  });
}
ui.inboxChannel.addEventListener("change", () => {
  inbox.filters.channel = ui.inboxChannel.value;
  reload();
});
ui.inboxStatus.addEventListener("change", () => {
  inbox.filters.status = ui.inboxStatus.value;
  reload();
});
ui.inboxMore.addEventListener("click", loadMore);
