// "Send a link to continue on…" (protocol 1.20): the assignee of a live web chat sends the visitor links that open
// WhatsApp, SMS or email with a one-time code; the first message carrying it moves the chat there, the widget
// still showing it live. The links come back as the chat's `link_request.sent` notice. Text only through textContent.
// "Send a link to continue on the web" (1.21): the other way, from SMS, WhatsApp or email, as the agent's message
// with a link to the hosted chat page and a sign-in code.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { api } from "./server.js";
import { state } from "./state.js";

// The schemes a link may have (https: WhatsApp's wa.me, sms:, mailto:): anything else is shown as text only.
const LINK_SCHEMES = new Set(["https:", "sms:", "mailto:"]);

export function safeHref(url) {
  try {
    return LINK_SCHEMES.has(new URL(url).protocol) ? url : null;
  } catch (_) {
    return null;
  }
}

/** Whether this tab is a live web chat of this agent's (the server has the last word, per channel). */
function linkable(chat) {
  const conv = chat.conv;
  return (
    conv.channel === "web" &&
    conv.status === "open" &&
    conv.access === "write" &&
    Boolean(conv.assignee) &&
    conv.assignee.id === state.me.user_id
  );
}

function closeLinksMenu(chat) {
  chat.els.linksMenu.hidden = true;
  chat.els.linksButton.setAttribute("aria-expanded", "false");
}

async function loadLinkChannels(chat) {
  const answer = await api(`/conversations/${chat.id}/links`);
  chat.linkChannels = answer.channels;
  return answer;
}

/** Called on every change of the tab's conversation: the button shows only on the agent's live web chat, and
 * only when a channel is on for links (asked of the server once per tab, and again whenever the menu opens). */
export function refreshLinks(chat) {
  const { linksButton } = chat.els;
  if (!linkable(chat)) {
    linksButton.hidden = true;
    closeLinksMenu(chat);
    return;
  }
  if (chat.linkChannels === undefined) {
    chat.linkChannels = null; // asked once: the answer shows the button
    loadLinkChannels(chat)
      .then(() => refreshLinks(chat))
      .catch(() => {
        chat.linkChannels = [];
      });
  }
  linksButton.hidden = !(chat.linkChannels && chat.linkChannels.length);
}

async function openLinksMenu(chat) {
  const { linksButton, linksMenu } = chat.els;
  let answer;
  try {
    answer = await loadLinkChannels(chat);
  } catch (error) {
    errorToast(error.message);
    return;
  }
  if (!answer.channels.length) {
    refreshLinks(chat);
    errorToast(answer.reason || "No channel is on for links.");
    return;
  }
  const boxes = answer.channels.map((option) => {
    const box = h("input", { attrs: { type: "checkbox", value: option.channel } });
    box.checked = true;
    return { box, row: h("label", { cls: "cc-links-option" }, [box, document.createTextNode(` ${option.label}`)]) };
  });
  const send = h("button", { cls: "cc-btn cc-btn-sm cc-btn-primary", text: "Send links", attrs: { type: "button" } });
  send.addEventListener("click", async () => {
    const channels = boxes.filter(({ box }) => box.checked).map(({ box }) => box.value);
    if (!channels.length) {
      errorToast("Pick at least one channel.");
      return;
    }
    send.disabled = true;
    try {
      // The links arrive in the chat as its `link_request.sent` notice.
      await api(`/conversations/${chat.id}/links`, { method: "POST", json: { channels } });
      closeLinksMenu(chat);
    } catch (error) {
      errorToast(error.message);
    } finally {
      send.disabled = false;
    }
  });
  linksMenu.replaceChildren(
    h("p", { cls: "cc-switch-title", text: "Send a link to continue on" }),
    ...boxes.map(({ row }) => row),
    send,
  );
  linksMenu.hidden = false;
  linksButton.setAttribute("aria-expanded", "true");
}

export function wireLinks(chat) {
  chat.els.linksButton.addEventListener("click", () => {
    if (chat.els.linksMenu.hidden) openLinksMenu(chat);
    else closeLinksMenu(chat);
  });
}

/** Whether this tab is a conversation of this agent's on SMS, WhatsApp or email (the server has the last word). */
function webLinkable(chat) {
  const conv = chat.conv;
  return (
    conv.channel !== "web" &&
    conv.status !== "closed" &&
    conv.access === "write" &&
    Boolean(conv.assignee) &&
    conv.assignee.id === state.me.user_id
  );
}

/** Called on every change of the tab's conversation: the button shows on the agent's SMS, WhatsApp or email
 * conversation once the server said a link can go (it needs a widget to open); asked once per conversation. */
export function refreshWebLink(chat) {
  const button = chat.els.webLinkButton;
  if (!webLinkable(chat)) {
    button.hidden = true;
    return;
  }
  if (chat.webLinkFor !== chat.conv.channel) {
    chat.webLinkFor = chat.conv.channel; // asked once per channel the conversation is on
    chat.webLinkAvailable = false;
    api(`/conversations/${chat.id}/web-link`)
      .then((answer) => {
        chat.webLinkAvailable = Boolean(answer.available);
        refreshWebLink(chat);
      })
      .catch(() => {});
  }
  button.hidden = !chat.webLinkAvailable;
}

export function wireWebLink(chat) {
  const button = chat.els.webLinkButton;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      // The link arrives in the chat as the agent's own message, with its delivery status.
      await api(`/conversations/${chat.id}/web-link`, { method: "POST", json: {} });
    } catch (error) {
      errorToast(error.message);
    } finally {
      button.disabled = false;
    }
  });
}

/** The `link_request.sent` notice as the console shows it: who sent links for which channels, and the links. */
export function linksSentNode(message) {
  const data = message.event_data || {};
  const links = Array.isArray(data.links) ? data.links : [];
  const names = { whatsapp: "WhatsApp", sms: "SMS", email: "email" };
  const li = h("li", { cls: "cc-event cc-links-sent" });
  li.appendChild(h("strong", { text: data.agent_name || "An agent" }));
  li.appendChild(document.createTextNode(" sent links to continue on: "));
  links.forEach((link, index) => {
    const href = safeHref(link.url);
    const label = names[link.channel] || link.channel;
    const node = href
      ? h("a", { text: label, attrs: { href, target: "_blank", rel: "noopener", "data-channel": link.channel } })
      : h("span", { text: label });
    if (index) li.appendChild(document.createTextNode(" · "));
    li.appendChild(node);
  });
  return li;
}
