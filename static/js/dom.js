/*
 * Small helpers shared by the chat widget (static/widget/widget.js) and the agent console
 * (static/console/console.js). A plain script, no build step: each page loads it (deferred) before its
 * own script, and it exposes one frozen namespace, window.SwitchboardDom.
 */
(() => {
  "use strict";

  /** Creates an element; `text` is set with textContent, so it never becomes markup. */
  function h(tag, { cls, text, attrs } = {}, children = []) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    for (const child of children) if (child) node.appendChild(child);
    return node;
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Plain-http deployments are not a secure context: build a v4 UUID from getRandomValues.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** "14:05" in the viewer's locale, for an ISO time (now when empty). */
  function clock(iso) {
    return new Date(iso || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "")} MB`;
  }

  /**
   * Opens a WebSocket and wires the listeners both pages share. `isCurrent(socket)` says whether this socket
   * is still the page's live one: a replaced socket's frames and close are ignored and its pings stop.
   * On open, `onOpen()` runs and `ping()` then runs every `pingMs` until the socket closes. Frames that are
   * not JSON are dropped; the others go to `onFrame(frame)`. `onClose(event)` (current socket only) must
   * forget the socket and decide whether to reconnect.
   */
  function openSocket(url, { isCurrent, onOpen, onFrame, onClose, ping, pingMs }) {
    const socket = new WebSocket(url);
    let pingTimer = null;
    socket.addEventListener("open", () => {
      onOpen();
      pingTimer = setInterval(() => {
        if (isCurrent(socket)) ping();
        else clearInterval(pingTimer);
      }, pingMs);
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (isCurrent(socket)) onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      if (isCurrent(socket)) onClose(event);
    });
    return socket;
  }

  window.SwitchboardDom = Object.freeze({ h, uuid, clock, formatBytes, openSocket });
})();
