// How the console shows people, addresses and times (live counters included).

import { h } from "../js/dom.js";
import { boot, state } from "./state.js";

export function dateTime(iso) {
  return new Date(iso).toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

function elapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

/** A live counter: refreshed every second from its data-since (server time) or data-local (our time). */
export function counter({ since, local }) {
  const node = h("span", { cls: "js-counter" });
  if (since) node.dataset.since = since;
  if (local) node.dataset.local = String(local);
  tickCounter(node);
  return node;
}

export function tickCounter(node) {
  const ms = node.dataset.since
    ? Date.now() + state.serverOffsetMs - Date.parse(node.dataset.since)
    : Date.now() - Number(node.dataset.local);
  node.textContent = elapsed(ms);
}

/** A live countdown to `until` (an ISO time on the server's clock), refreshed every second; never below 0:00. */
export function countdown(until) {
  const node = h("span", { cls: "cc-countdown js-countdown" });
  node.dataset.until = until;
  tickCountdown(node);
  return node;
}

export function tickCountdown(node) {
  const left = Date.parse(node.dataset.until) - (Date.now() + state.serverOffsetMs);
  if (Number.isNaN(left)) return;
  // Rounded up: "0:01" until the last second is over, "0:00" from the deadline on.
  node.textContent = elapsed(Math.ceil(left / 1000) * 1000);
  node.classList.toggle("is-urgent", left <= 10_000);
}

export function contactUrl(contactId) {
  return boot.contactUrl.replace(/\/0\/$/, `/${encodeURIComponent(contactId)}/`);
}

/** The widget's admin-set page for agents, only when it is a plain web address. */
export function externalUrlOf(widget) {
  const url = (widget && widget.agent_external_url) || "";
  return /^https?:\/\//i.test(url) ? url : "";
}

export function contactName(contact) {
  return (contact && contact.name) || "Visitor";
}

export const IDENTITY_KINDS = { email: "Email", phone: "Phone", whatsapp: "WhatsApp" };

/** Addresses a person can use; the web visitor id is an internal handle, not shown. */
export function addresses(contact) {
  return ((contact && contact.identities) || []).filter((identity) => identity.kind in IDENTITY_KINDS);
}

export function identityLine(contact) {
  return addresses(contact).map((identity) => identity.value).join(" · ");
}
