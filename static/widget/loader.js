/*
 * Switchboard chat widget loader, embedded on a customer's page with:
 *   <script src="https://HOST/static/widget/loader.js" data-widget="PUBLIC_KEY" async></script>
 *
 * It adds a launcher button and a chat window that is an iframe of HOST/widget/PUBLIC_KEY/. The iframe
 * does all the chatting (same-origin socket and uploads); this script only places it on the page and
 * talks to it through postMessage, checking the origin and the source window of every message. The launcher
 * appears when the iframe is ready, where the widget's display rules allow (page URL, seconds on the page), and
 * always for a visitor with a chat in progress.
 *
 * Everything is styled through element.style (CSSOM), which a host page's CSP does not block, inside a
 * shadow root, so the host page's CSS cannot reach the launcher.
 */
(() => {
  "use strict";

  const script =
    document.currentScript || document.querySelector('script[data-widget][src*="/static/widget/loader.js"]');
  if (!script || !script.dataset.widget) return;
  const publicKey = script.dataset.widget;
  // Two copies of the snippet on one page must not add two launchers.
  const loadedFlag = `switchboardWidget:${publicKey}`;
  if (window[loadedFlag]) return;
  window[loadedFlag] = true;

  const HOST = new URL(script.src, location.href).origin;
  const MSG_SOURCE = "switchboard-widget";
  const OPEN_KEY = `sb-widget-open:${publicKey}`;
  const DEFAULT_HEIGHT = 640;
  const WIDTH = 380;
  const MOBILE_MAX_WIDTH = 480;
  const READY_TIMEOUT_MS = 15000;

  const state = {
    open: false,
    ready: false,
    shown: false, // the launcher is on the page (the display rules allowed it, or a chat is in progress)
    showTimer: null,
    unread: 0,
    height: DEFAULT_HEIGHT,
    accent: "#2563eb",
  };

  function el(tag, styles, attrs) {
    const node = document.createElement(tag);
    Object.assign(node.style, styles || {});
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }

  function chatIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute(
      "d",
      "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8.4L4 21.5V18a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 " +
        "3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z",
    );
    svg.appendChild(path);
    return svg;
  }

  function closeIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2.4");
    path.setAttribute("stroke-linecap", "round");
    path.setAttribute("d", "M6 9l6 6 6-6");
    svg.appendChild(path);
    return svg;
  }

  // White or near-black text, whichever reads better on the accent colour.
  function textOn(hex) {
    const m = /^#([0-9a-f]{6})$/i.exec(hex);
    if (!m) return "#ffffff";
    const n = parseInt(m[1], 16);
    const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 ? "#111827" : "#ffffff";
  }

  const host = el("div", { all: "initial", position: "fixed", zIndex: "2147483000", right: "0", bottom: "0" });
  host.setAttribute("data-switchboard-widget", publicKey);
  const root = host.attachShadow({ mode: "open" });

  const frameBox = el("div", {
    position: "fixed",
    right: "20px",
    bottom: "96px",
    width: `${WIDTH}px`,
    height: `${DEFAULT_HEIGHT}px`,
    borderRadius: "16px",
    overflow: "hidden",
    boxShadow: "0 12px 40px rgba(15, 23, 42, 0.28)",
    background: "#ffffff",
    opacity: "0",
    transform: "translateY(12px)",
    transition: "opacity 160ms ease, transform 160ms ease, height 160ms ease",
    visibility: "hidden",
  });
  const frameSrc = new URL(`/widget/${encodeURIComponent(publicKey)}/`, HOST);
  frameSrc.searchParams.set("origin", location.origin);
  const frame = el(
    "iframe",
    { border: "0", width: "100%", height: "100%", display: "block", colorScheme: "normal" },
    { src: frameSrc.href, title: "Chat", allow: "clipboard-write" },
  );
  frameBox.appendChild(frame);

  const launcher = el(
    "button",
    {
      position: "fixed",
      right: "20px",
      bottom: "20px",
      width: "60px",
      height: "60px",
      borderRadius: "50%",
      border: "0",
      padding: "0",
      cursor: "pointer",
      display: "none", // shown once the iframe says it is ready (so allowed on this page) and the display rules agree
      alignItems: "center",
      justifyContent: "center",
      boxShadow: "0 6px 20px rgba(15, 23, 42, 0.3)",
      transition: "transform 120ms ease",
    },
    { type: "button", "aria-label": "Open chat", "aria-expanded": "false" },
  );
  const iconOpen = chatIcon();
  const iconClose = closeIcon();
  iconClose.style.display = "none";
  launcher.append(iconOpen, iconClose);
  launcher.addEventListener("mouseenter", () => (launcher.style.transform = "scale(1.06)"));
  launcher.addEventListener("mouseleave", () => (launcher.style.transform = ""));

  const badge = el(
    "span",
    {
      position: "absolute",
      top: "-4px",
      right: "-4px",
      minWidth: "22px",
      height: "22px",
      padding: "0 6px",
      boxSizing: "border-box",
      borderRadius: "11px",
      background: "#dc2626",
      color: "#ffffff",
      font: "700 12px/22px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      textAlign: "center",
      display: "none",
      border: "2px solid #ffffff",
    },
    { "aria-live": "polite" },
  );
  launcher.appendChild(badge);
  root.append(frameBox, launcher);

  function post(message) {
    // Only ever to our own iframe's origin: a navigated-away frame cannot receive it.
    if (frame.contentWindow) frame.contentWindow.postMessage({ source: MSG_SOURCE, ...message }, HOST);
  }

  function isMobile() {
    return window.innerWidth <= MOBILE_MAX_WIDTH;
  }

  function layout() {
    if (isMobile()) {
      Object.assign(frameBox.style, {
        right: "0",
        bottom: "0",
        width: "100vw",
        height: "100%",
        borderRadius: "0",
      });
      launcher.style.visibility = state.open ? "hidden" : "visible";
    } else {
      const available = window.innerHeight - 116;
      Object.assign(frameBox.style, {
        right: "20px",
        bottom: "96px",
        width: `${Math.min(WIDTH, window.innerWidth - 40)}px`,
        height: `${Math.max(280, Math.min(state.height, available))}px`,
        borderRadius: "16px",
      });
      launcher.style.visibility = "visible";
    }
  }

  function render() {
    Object.assign(frameBox.style, state.open
      ? { opacity: "1", transform: "translateY(0)", visibility: "visible" }
      : { opacity: "0", transform: "translateY(12px)", visibility: "hidden" });
    launcher.setAttribute("aria-expanded", String(state.open));
    launcher.setAttribute("aria-label", state.open ? "Close chat" : "Open chat");
    iconOpen.style.display = state.open ? "none" : "block";
    iconClose.style.display = state.open ? "block" : "none";
    launcher.style.background = state.accent;
    launcher.style.color = textOn(state.accent);
    const showBadge = !state.open && state.unread > 0;
    badge.style.display = showBadge ? "block" : "none";
    badge.textContent = state.unread > 99 ? "99+" : String(state.unread);
    launcher.title = showBadge ? `${state.unread} unread` : "";
    layout();
  }

  function setOpen(open) {
    state.open = open;
    try {
      // Per tab, so the window stays open while the visitor navigates the same site.
      sessionStorage.setItem(OPEN_KEY, open ? "1" : "0");
    } catch (_) {
      /* storage can be disabled; the window then simply starts closed */
    }
    render();
    post({ type: open ? "opened" : "closed" });
  }

  // Display rules (the widget's config `display`, protocol 1.11): the launcher appears only on pages whose address
  // contains one of `url_contains` (any page when there are none) and none of `url_excludes`, ignoring case, and
  // only once the visitor has been `delay_seconds` on the page. Checked when the page loads.
  function displayAllowed(display) {
    if (!display) return true;
    const url = location.href.toLowerCase();
    const texts = (list) => (Array.isArray(list) ? list : []).filter((t) => typeof t === "string" && t);
    const contains = texts(display.url_contains);
    if (contains.length && !contains.some((text) => url.includes(text.toLowerCase()))) return false;
    return !texts(display.url_excludes).some((text) => url.includes(text.toLowerCase()));
  }

  function displayDelay(display) {
    const seconds = Math.min(Math.max(Number(display && display.delay_seconds) || 0, 0), 600);
    // Time on the page counts from its navigation, not from when this script ran.
    return seconds * 1000 - performance.now();
  }

  function showLauncher() {
    if (state.shown) return;
    state.shown = true;
    launcher.style.display = "flex";
    let wasOpen = false;
    try {
      wasOpen = sessionStorage.getItem(OPEN_KEY) === "1";
    } catch (_) {
      /* see setOpen */
    }
    setOpen(wasOpen);
  }

  // --- initialisation (protocol 1.19) --------------------------------------------------------------------------
  // By default the widget starts as soon as it loads, as an anonymous visitor (or the one this browser already is).
  // `data-auth-code="CODE"` on this script, or `Switchboard.init({ authCode })`, signs the visitor in as the
  // contact the code was made for; a code that is expired, used or unknown leaves the widget uninitialised (no
  // launcher), fires `switchboard:error` on window with `detail.code`, and rejects init's promise with an Error
  // whose `code` says the same. `Switchboard.init()` without a code then starts an anonymous visitor.
  // `data-init="manual"`: nothing starts before the page calls Switchboard.init.
  const init = {
    done: false, // initialised: the launcher may show
    ready: null, // the iframe's last "ready" message
    waiters: [], // resolvers waiting for the iframe to be ready
    requests: new Map(), // auth code request id → { resolve, reject }
    nextId: 1,
  };

  function applyReady(data) {
    clearTimeout(state.showTimer);
    if (data.ongoing) {
      showLauncher(); // a chat in progress is never hidden by the display rules
    } else if (displayAllowed(data.display)) {
      const wait = displayDelay(data.display);
      if (wait > 0) state.showTimer = setTimeout(showLauncher, wait);
      else showLauncher();
    }
  }

  function frameReady() {
    if (init.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const failed = () => reject(refuse("widget_unavailable", "The chat window did not load."));
      const timer = setTimeout(failed, READY_TIMEOUT_MS);
      init.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  function refuse(code, message) {
    const error = new Error(message || code);
    error.code = code;
    const detail = { code, message: error.message, widget: publicKey };
    window.dispatchEvent(new CustomEvent("switchboard:error", { detail }));
    return error;
  }

  function startAnonymous() {
    init.done = true;
    if (init.ready) applyReady(init.ready);
    return Promise.resolve({ signedIn: false });
  }

  // Identity verification (protocol 1.21): `Switchboard.init({ user: { id, email, phone, name }, signature })`, or
  // `data-user-id` … `data-user-signature` on this script, signs the visitor in as a user of the site whose id its
  // backend signed (docs/identity-verification.md). A refused signature fires `switchboard:error` and the widget
  // starts as an anonymous visitor: init's promise then resolves with `{ signedIn: false, error }`.
  function identify(user, signature) {
    const fields = {};
    for (const key of ["id", "email", "phone", "name"]) {
      const value = user[key];
      fields[key] = value === undefined || value === null ? "" : String(value);
    }
    fields.signature = typeof signature === "string" ? signature : "";
    return frameReady().then(
      () =>
        new Promise((resolve) => {
          const id = init.nextId++;
          init.requests.set(id, { resolve, reject: resolve, identify: true });
          post({ type: "identify", id, user: fields });
        }),
    );
  }

  function onIdentifyResult(data) {
    const request = init.requests.get(data.id);
    if (!request) return;
    init.requests.delete(data.id);
    const ongoing = Boolean(data.ok && data.conversation_id);
    init.done = true;
    if (init.ready) applyReady({ ...init.ready, ongoing });
    if (!data.ok) {
      const error = refuse(String(data.code || "error"), typeof data.message === "string" ? data.message : "");
      request.resolve({ signedIn: false, error: { code: error.code, message: error.message } });
      return;
    }
    request.resolve({ signedIn: true, conversationId: data.conversation_id || null });
  }

  function logout() {
    if (init.ready) post({ type: "logout" });
  }

  function initialise(options) {
    if (options && options.user && typeof options.user === "object") return identify(options.user, options.signature);
    const authCode = options && typeof options.authCode === "string" ? options.authCode.trim() : "";
    if (options && options.authCode !== undefined && !authCode) {
      return Promise.reject(refuse("auth_code_unknown", "The sign-in code is empty."));
    }
    if (!authCode) return startAnonymous();
    return frameReady().then(
      () =>
        new Promise((resolve, reject) => {
          const id = init.nextId++;
          init.requests.set(id, { resolve, reject });
          post({ type: "auth_code", id, code: authCode });
        }),
    );
  }

  function onAuthCodeResult(data) {
    const request = init.requests.get(data.id);
    if (!request) return;
    init.requests.delete(data.id);
    if (!data.ok) {
      request.reject(refuse(String(data.code || "error"), typeof data.message === "string" ? data.message : ""));
      return;
    }
    init.done = true;
    showLauncher();
    if (!state.open) setOpen(true); // the customer came to go on with their conversation: show it
    request.resolve({ signedIn: true, conversationId: data.conversation_id || null });
  }

  window.Switchboard = Object.assign(window.Switchboard || {}, { init: initialise, logout });

  launcher.addEventListener("click", () => setOpen(!state.open));
  window.addEventListener("resize", layout);

  window.addEventListener("message", (event) => {
    if (event.origin !== HOST || event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || data.source !== MSG_SOURCE) return;
    switch (data.type) {
      case "ready": {
        state.ready = true;
        if (/^#[0-9a-f]{6}$/i.test(data.accent || "")) state.accent = data.accent;
        if (typeof data.title === "string") frame.title = data.title;
        init.ready = data;
        if (init.done) applyReady(data);
        for (const resolve of init.waiters.splice(0)) resolve();
        break;
      }
      case "auth_code.result":
        onAuthCodeResult(data);
        break;
      case "identify.result":
        onIdentifyResult(data);
        break;
      case "unread":
        state.unread = Math.max(0, Number(data.count) || 0);
        render();
        break;
      case "open":
        if (!state.open && state.shown) setOpen(true);
        break;
      case "close":
        if (state.open) setOpen(false);
        launcher.focus();
        break;
      case "resize":
        state.height = Math.max(280, Math.min(Number(data.height) || DEFAULT_HEIGHT, DEFAULT_HEIGHT));
        layout();
        break;
      default:
        break;
    }
  });

  function mount() {
    document.body.appendChild(host);
    render();
    setTimeout(() => {
      if (!state.ready) {
        console.warn(
          `Switchboard widget ${publicKey}: the chat window did not load. Is ${location.origin} ` +
            "among the widget's allowed origins?",
        );
      }
    }, READY_TIMEOUT_MS);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  if (script.dataset.userId !== undefined) {
    const data = script.dataset;
    const user = { id: data.userId, email: data.userEmail, phone: data.userPhone, name: data.userName };
    window.Switchboard.ready = initialise({ user, signature: data.userSignature || "" });
  } else if (script.dataset.authCode !== undefined) {
    // Kept where the page can await it; the rejection is also the `switchboard:error` event.
    window.Switchboard.ready = initialise({ authCode: script.dataset.authCode });
    window.Switchboard.ready.catch(() => {});
  } else if (script.dataset.init !== "manual") {
    window.Switchboard.ready = startAnonymous();
  }
})();
