/*
 * Small DOM helpers shared by the chat widget (static/widget/) and the agent console (static/console/).
 * A native ES module, no build step. Text only ever goes in through textContent.
 */

/** Creates an element; `text` is set with textContent, so it never becomes markup. */
export function h(tag, { cls, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Plain-http deployments are not a secure context: build a v4 UUID from getRandomValues.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "14:05" in the viewer's locale, for an ISO time (now when empty). */
export function clock(iso) {
  return new Date(iso || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "")} MB`;
}

/** Whether a scrolled log is (nearly) at its end: new messages then keep it there. */
export function nearEnd(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
}

export function scrollToEnd(scroller) {
  scroller.scrollTop = scroller.scrollHeight;
}
