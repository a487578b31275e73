// A chat's header controls (important, external page, status, close) and its side panel.

import { h } from "../js/dom.js";
import { errorToast, toast } from "./attention.js";
import { CHANNELS, removeChat, updateChat } from "./chat.js";
import { addresses, contactName, contactUrl, dateTime, externalUrlOf, IDENTITY_KINDS } from "./format.js";
import { loadOlder } from "./messages.js";
import { api, request } from "./server.js";
import { state } from "./state.js";

export function renderSide(chat) {
  const conv = chat.conv;
  const { customer, survey, surveySection, info } = chat.els;
  const row = (label, value) => [h("dt", { text: label }), h("dd", {}, [value])];
  const contactRows = [];
  const link = h("a", {
    text: contactName(conv.contact),
    attrs: { href: conv.contact ? contactUrl(conv.contact.id) : "#", target: "_blank", rel: "noopener" },
  });
  contactRows.push(...row("Name", link));
  for (const identity of addresses(conv.contact)) {
    const badge = h("span", {
      cls: `cc-badge ${identity.verified ? "cc-badge-ok" : "cc-badge-warn"}`,
      text: identity.verified ? "Verified" : "Unverified",
      attrs: { title: identity.verified ? "Proved by the customer" : "Typed by the visitor" },
    });
    const value = h("span", {}, [document.createTextNode(`${identity.value} `), badge]);
    contactRows.push(...row(IDENTITY_KINDS[identity.kind], value));
  }
  customer.replaceChildren(...contactRows);
  const answers = (conv.survey || []).filter((answer) => answer.value);
  surveySection.hidden = answers.length === 0;
  survey.replaceChildren(...answers.flatMap((answer) => row(answer.label, document.createTextNode(answer.value))));
  const infoRows = [];
  if (conv.queue) infoRows.push(...row("Queue", document.createTextNode(conv.queue.name)));
  if (conv.widget) infoRows.push(...row("Widget", document.createTextNode(conv.widget.name)));
  if (conv.created_at) infoRows.push(...row("Started", document.createTextNode(dateTime(conv.created_at))));
  if (conv.answered_at) infoRows.push(...row("Answered", document.createTextNode(dateTime(conv.answered_at))));
  if (conv.started_offline) infoRows.push(...row("Started as", document.createTextNode("an offline message")));
  infoRows.push(...row("Status", document.createTextNode(conv.status)));
  info.replaceChildren(...infoRows);
}

/** The status picker from the tenant's active dispositions (hello, then `dispositions.updated`). A status
 * already chosen that is no longer offered stays shown, so the chat does not look undecided. */
export function fillDispositions(chat) {
  const select = chat.els.disposition;
  const current = chat.conv.disposition_id ? String(chat.conv.disposition_id) : "";
  const shown = current ? select.querySelector(`option[value="${CSS.escape(current)}"]`) : null;
  const shownName = shown ? shown.textContent : "";
  select.replaceChildren(h("option", { text: "Choose a status…", attrs: { value: "" } }));
  for (const disposition of state.dispositions) {
    select.appendChild(h("option", { text: disposition.name, attrs: { value: String(disposition.id) } }));
  }
  if (current && !state.dispositions.some((d) => String(d.id) === current) && shownName) {
    const kept = h("option", { text: shownName, attrs: { value: current } });
    kept.disabled = true;
    select.appendChild(kept);
  }
  select.value = current;
  refreshCloseButton(chat);
}

export function refreshCloseButton(chat) {
  const { close, disposition } = chat.els;
  if (chat.conv.access === "read") {
    // A read-only tab (opened from the inbox) only goes away.
    close.disabled = false;
    close.textContent = "Close tab";
    close.title = "Remove this tab";
    return;
  }
  const chosen = Boolean(disposition.value);
  const closed = chat.conv.status === "closed";
  close.disabled = !chosen;
  close.textContent = closed ? "Close tab" : "Close chat";
  close.title = chosen ? (closed ? "Remove this tab" : "End the chat: the visitor is told") : "Choose a status first";
  disposition.classList.toggle("is-missing", !chosen);
}

function closeSwitchMenu(chat) {
  chat.els.switchMenu.hidden = true;
  chat.els.switchButton.setAttribute("aria-expanded", "false");
}

/** "Move to…": the channels this chat may continue on now (asked of the server, rule by rule), each offered
 * with the visitor's address or shown with the reason it is not. */
async function openSwitchMenu(chat) {
  const { switchButton, switchMenu } = chat.els;
  let options;
  try {
    options = (await api(`/conversations/${chat.id}/channels`)).channels;
  } catch (error) {
    errorToast(error.message);
    return;
  }
  const items = options.map((option) => {
    const label = CHANNELS[option.channel] || option.channel;
    if (!option.offered) {
      return h("p", { cls: "cc-switch-off", text: `${label}: ${option.reason}`, attrs: { "data-channel": option.channel } });
    }
    const button = h("button", {
      cls: "cc-btn cc-btn-sm",
      text: `${label} · ${option.address}`,
      attrs: { type: "button", "data-channel": option.channel },
    });
    button.addEventListener("click", () => {
      button.disabled = true;
      request(
        { type: "conversation.switch", conversation_id: chat.id, channel: option.channel },
        {
          ok: () => closeSwitchMenu(chat), // the new channel arrives as conversation.updated
          fail: (error) => {
            button.disabled = false;
            errorToast(error.message);
          },
        },
      );
    });
    return button;
  });
  switchMenu.replaceChildren(h("p", { cls: "cc-switch-title", text: "Continue this chat by" }), ...items);
  switchMenu.hidden = false;
  switchButton.setAttribute("aria-expanded", "true");
}

export function closeTeamMenu(chat) {
  const { teamMenu, transfer, invite } = chat.els;
  teamMenu.hidden = true;
  delete teamMenu.dataset.mode;
  transfer.setAttribute("aria-expanded", "false");
  invite.setAttribute("aria-expanded", "false");
}

const TEAM_MENU = {
  transfer: { title: "Transfer this chat to", frame: "conversation.transfer", button: "transfer" },
  invite: { title: "Invite into this chat", frame: "conversation.invite", button: "invite" },
};

/** "Transfer…" and "Invite…": the colleagues (each free now, or shown with the reason they are not) and the
 * queues (with how many of their members are online), asked of the server when the menu opens. */
async function openTeamMenu(chat, mode) {
  const { teamMenu } = chat.els;
  const spec = TEAM_MENU[mode];
  let team;
  try {
    team = await api(`/conversations/${chat.id}/colleagues`);
  } catch (error) {
    errorToast(error.message);
    return;
  }
  const pick = (label, target) => {
    const button = h("button", { cls: "cc-btn cc-btn-sm", text: label, attrs: { type: "button" } });
    button.addEventListener("click", () => {
      button.disabled = true;
      request(
        { type: spec.frame, conversation_id: chat.id, ...target },
        {
          // A transfer's tab goes with conversation.unassigned; an invite's colleague arrives as a notice.
          ok: () => closeTeamMenu(chat),
          fail: (error) => {
            button.disabled = false;
            errorToast(error.message);
          },
        },
      );
    });
    return button;
  };
  const agents = team.agents.map((agent) =>
    agent.available
      ? pick(`${agent.name} · ${agent.chats}/${agent.max_chats}`, { agent_id: agent.user_id })
      : h("p", { cls: "cc-switch-off", text: agent.reason }),
  );
  const queues = team.queues.map((queue) =>
    pick(`${queue.name} · ${queue.online} online`, { queue_id: queue.id }),
  );
  teamMenu.replaceChildren(
    h("p", { cls: "cc-switch-title", text: spec.title }),
    h("p", { cls: "cc-team-heading", text: "Colleagues" }),
    ...(agents.length ? agents : [h("p", { cls: "cc-switch-off", text: "No colleagues yet." })]),
    h("p", { cls: "cc-team-heading", text: "Queues" }),
    ...(queues.length ? queues : [h("p", { cls: "cc-switch-off", text: "No queues yet." })]),
  );
  teamMenu.setAttribute("aria-label", spec.title);
  teamMenu.dataset.mode = mode;
  teamMenu.hidden = false;
  chat.els[spec.button].setAttribute("aria-expanded", "true");
}

export function wireControls(chat) {
  const { els } = chat;
  els.assist.addEventListener("click", () => {
    els.assist.disabled = true;
    request(
      { type: "conversation.assist", conversation_id: chat.id },
      {
        ok: () => {
          els.assist.disabled = false;
          toast({ title: "Help is on its way", body: "The supervisors on duty were alerted to this chat." });
        },
        fail: (error) => {
          els.assist.disabled = false;
          errorToast(error.message);
        },
      },
    );
  });
  els.join.addEventListener("click", () => {
    els.join.disabled = true;
    request(
      { type: "conversation.join", conversation_id: chat.id },
      {
        ok: () => {
          els.join.disabled = false; // conversation.assigned made the tab a working one
        },
        fail: (error) => {
          els.join.disabled = false;
          errorToast(error.message);
        },
      },
    );
  });
  for (const mode of Object.keys(TEAM_MENU)) {
    els[TEAM_MENU[mode].button].addEventListener("click", () => {
      const same = !els.teamMenu.hidden && els.teamMenu.dataset.mode === mode;
      closeTeamMenu(chat);
      if (!same) openTeamMenu(chat, mode);
    });
  }
  els.switchButton.addEventListener("click", () => {
    if (els.switchMenu.hidden) openSwitchMenu(chat);
    else closeSwitchMenu(chat);
  });
  els.important.addEventListener("click", () => {
    const important = !chat.conv.important;
    request(
      { type: "conversation.important", conversation_id: chat.id, important },
      { ok: () => updateChat(chat, { important }), fail: (error) => errorToast(error.message) },
    );
  });
  els.external.addEventListener("click", () => {
    const url = externalUrlOf(chat.conv.widget);
    if (url) window.open(url, "_blank", "noopener");
  });
  els.disposition.addEventListener("change", () => {
    const value = els.disposition.value;
    refreshCloseButton(chat);
    request(
      { type: "conversation.disposition", conversation_id: chat.id, disposition_id: value ? Number(value) : null },
      {
        ok: () => updateChat(chat, { disposition_id: value ? Number(value) : null }),
        fail: (error) => {
          els.disposition.value = chat.conv.disposition_id ? String(chat.conv.disposition_id) : "";
          refreshCloseButton(chat);
          errorToast(error.message);
        },
      },
    );
  });
  els.close.addEventListener("click", () => {
    if (chat.conv.status === "closed" || chat.conv.access === "read") {
      removeChat(chat);
      return;
    }
    els.close.disabled = true;
    chat.closing = true;
    request(
      { type: "conversation.close", conversation_id: chat.id, disposition_id: Number(els.disposition.value) },
      {
        fail: (error) => {
          chat.closing = false;
          refreshCloseButton(chat);
          errorToast(error.message);
        },
      },
    );
  });
  els.older.addEventListener("click", () => loadOlder(chat));
}
