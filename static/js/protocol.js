/*
 * The client side of docs/protocol.md, shared by the widget (visitor socket, §3) and the console (agent
 * socket, §4). A native ES module, no build step.
 *
 * ProtocolClient owns one socket: connect, ping every 20 s, reconnect with jittered backoff (1 s, 2 s, 4 s … 30 s),
 * or when a busy server said to (4503 with `retry_after`), unless the server closed for good (4401, 4403,
 * 4404), request_id answers, and the routing of the
 * message frames to the Thread of their conversation.
 *
 * A Thread is one conversation's messages in one log element (§2): messages are placed by seq, a seq
 * already shown is ignored, an own message is shown at once as pending and matched to the server's copy by
 * client_id, an ack with last_seq is its delivery, and every send not yet acked is sent again, with the
 * same client_id, after each resume (the server stores it once). What a message looks like is the page's
 * business: it gives the Thread a `view` (see Thread).
 */

import { nearEnd, scrollToEnd, uuid } from "./dom.js";

export const PING_MS = 20000;
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// Closes after which the page decides what happens (§1): no automatic reconnect.
const FINAL_CLOSE_CODES = new Set([4401, 4403, 4404]);
// The member's role changed (docs/protocol.md §1): reconnect at once for a hello with the new role.
const CLOSE_ACCESS_CHANGED = 4000;
// The server could not open the socket (§1): with `retry_after` on its `unavailable` frame it was busy and
// said when to come back (its return times are spread at the pace it opens sockets), else back off.
const CLOSE_UNAVAILABLE = 4503;
const RETRY_AFTER_MAX_MS = 60000;
const RETRY_AFTER_JITTER_MS = 250;
// A send refused with these was not lost: the same client_id goes again a little later (§8).
const RETRY_CODES = new Set(["server_error", "rate_limited"]);

/** A websocket URL on this page's own host. */
export function socketUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/** Whether a conversation object is older than the one on screen (§5 `version`): it is then dropped.
 * With two server processes an update can overtake an earlier one on its way here. */
export function isStale(held, incoming) {
  return typeof held.version === "number" && typeof incoming.version === "number" && incoming.version < held.version;
}

/**
 * Places a message element in `log` by seq. Elements with a seq take part, and own messages still
 * waiting for theirs (data-pending) count as last; anything else (a greeting, an earlier conversation and
 * its dividers) is stepped over.
 */
export function placeBySeq(log, el, seq) {
  for (const other of log.children) {
    let otherSeq;
    if (other.dataset.seq) otherSeq = Number(other.dataset.seq);
    else if ("pending" in other.dataset) otherSeq = Infinity;
    else continue;
    if (otherSeq > seq) {
      log.insertBefore(el, other);
      return;
    }
  }
  log.appendChild(el);
}

/**
 * One conversation's messages. The `view` the page gives:
 *   log, scroller: the list the messages go in, and the element that scrolls it;
 *   render(message, {status}): a new element for a message (status "sent" for the server's copies);
 *   onMessage(message, el, {replay, stick}): after a new message was placed (`stick`: the log was at its
 *     end before, so the page may keep it there);
 *   onAck(el, frame): an own message got its seq; onFailed(el, frame): the server refused it for good;
 *   onResumed(): a resume finished (the unacked sends have just gone again).
 */
export class Thread {
  constructor(client, id, view) {
    this.client = client;
    this.id = id;
    this.view = view;
    this.lastSeq = 0; // the position to resume from (§2.5)
    this.resumed = false;
    this.bySeq = new Map(); // seq -> element
    this.own = new Map(); // client_id -> {el, acked}
    this.unacked = new Map(); // client_id -> the message.send frame, until acked
  }

  /** `resume` from the last seq; `fail` (optional) sends it with a request_id and gets its error. */
  resume({ fail } = {}) {
    this.resumed = false;
    const frame = { type: "resume", conversation_id: this.id, last_seq: this.lastSeq };
    if (fail) this.client.request(frame, { fail });
    else this.client.send(frame);
  }

  /** Shows an own message (element `el`) as pending and sends it: now when resumed, else after the resume. */
  send(fields, el) {
    const clientId = uuid();
    const frame = { type: "message.send", client_id: clientId, ...fields };
    el.dataset.pending = "";
    this.view.log.appendChild(el);
    this.own.set(clientId, { el, acked: false });
    this.unacked.set(clientId, frame);
    if (this.resumed) this.client.send(frame);
    scrollToEnd(this.view.scroller);
    return clientId;
  }

  receive(message, replay) {
    const seq = message.seq;
    this.lastSeq = Math.max(this.lastSeq, seq);
    // Already shown: an own message placed by its ack, or a replay after a reconnect.
    if (this.bySeq.has(seq)) return;
    const stick = nearEnd(this.view.scroller);
    const own = message.client_id ? this.own.get(message.client_id) : null;
    let el;
    if (own) {
      // The server's copy of a message already on screen: keep the element, give it its seq.
      el = own.el;
      el.remove();
      el.replaceChildren(...this.view.render(message, { status: "sent" }).childNodes);
      own.acked = true;
      this.unacked.delete(message.client_id);
    } else {
      el = this.view.render(message, { status: "sent" });
    }
    this.place(el, seq);
    this.view.onMessage(message, el, { replay, stick });
  }

  ack(frame) {
    const own = this.own.get(frame.client_id);
    this.unacked.delete(frame.client_id);
    // With last_seq the ack is the delivery of this message: no message.new of it follows (§2.3).
    if (frame.last_seq) this.lastSeq = Math.max(this.lastSeq, frame.last_seq);
    if (!own || own.acked) return;
    own.acked = true;
    own.el.remove();
    this.place(own.el, frame.seq);
    this.view.onAck(own.el, frame);
  }

  resumeDone(frame) {
    this.lastSeq = Math.max(this.lastSeq, frame.last_seq);
    this.resumed = true;
    // Whatever is still unacked was not stored (or its ack was lost): resending is safe.
    for (const resend of this.unacked.values()) this.client.send(resend);
    if (this.view.onResumed) this.view.onResumed();
  }

  /** An error frame that answers one of this thread's sends; false when it is not one of them. */
  fail(frame) {
    const own = this.own.get(frame.client_id);
    if (!own) return false;
    if (RETRY_CODES.has(frame.code)) {
      setTimeout(() => {
        const resend = this.unacked.get(frame.client_id);
        if (resend) this.client.send(resend);
      }, (frame.retry_after || 2) * 1000);
      return true;
    }
    this.unacked.delete(frame.client_id);
    this.view.onFailed(own.el, frame);
    return true;
  }

  place(el, seq) {
    el.dataset.seq = String(seq);
    delete el.dataset.pending;
    if (!this.bySeq.has(seq)) this.bySeq.set(seq, el);
    placeBySeq(this.view.log, el, seq);
  }
}

/**
 * One socket and its threads. Hooks:
 *   url(): where to connect (read at every connect);
 *   onOpen(): the socket is open (resume here, or on `hello`);
 *   onFrame(frame): every frame the client does not handle itself (hello, typing, errors that are not a
 *     refused send or a request's answer, …);
 *   onClose(code, {reconnecting}): the socket closed; `reconnecting` is false after 4401, 4403, 4404.
 */
export class ProtocolClient {
  constructor({ url, onOpen, onFrame, onClose, pingMs = PING_MS }) {
    this.hooks = { url, onOpen, onFrame, onClose };
    this.pingMs = pingMs;
    this.socket = null;
    this.backoffMs = BACKOFF_FIRST_MS;
    this.retryAfterMs = null; // when the busy server said to come back (its last `unavailable` frame)
    this.reconnectTimer = null;
    this.threads = new Map(); // conversation id -> Thread
    this.requests = new Map(); // request_id -> {ok, fail}
    this.requestCounter = 0;
  }

  thread(id, view) {
    const thread = new Thread(this, id, view);
    this.threads.set(id, thread);
    return thread;
  }

  forget(id) {
    this.threads.delete(id);
  }

  connect() {
    this.disconnect();
    const socket = new WebSocket(this.hooks.url());
    const isCurrent = () => socket === this.socket;
    let pingTimer = null;
    this.socket = socket;
    this.retryAfterMs = null;
    socket.addEventListener("open", () => {
      if (!isCurrent()) return;
      this.backoffMs = BACKOFF_FIRST_MS;
      this.hooks.onOpen();
      pingTimer = setInterval(() => {
        if (isCurrent()) this.send({ type: "ping" });
        else clearInterval(pingTimer);
      }, this.pingMs);
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (!isCurrent()) return;
      if (frame.type === "error" && frame.code === "unavailable" && typeof frame.retry_after === "number") {
        this.retryAfterMs = Math.min(Math.max(frame.retry_after * 1000, 0), RETRY_AFTER_MAX_MS);
      }
      this.dispatch(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      if (isCurrent()) this.closed(event.code);
    });
  }

  /** Closes the socket on purpose: no reconnect, and its close is not reported. */
  disconnect() {
    clearTimeout(this.reconnectTimer);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
      this.failRequests();
    }
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Sends a frame with a request_id; `ok`/`fail` run on its answer (`ok`, a specific reply, or `error`). */
  request(frame, { ok, fail } = {}) {
    this.requestCounter += 1;
    const requestId = `r${this.requestCounter}`;
    this.requests.set(requestId, { ok, fail });
    if (!this.send({ ...frame, request_id: requestId })) {
      this.requests.delete(requestId);
      if (fail) fail({ message: "Not connected: try again in a moment." });
    }
  }

  dispatch(frame) {
    if (this.answer(frame) && frame.type === "error") return;
    const thread = this.threads.get(frame.conversation_id);
    switch (frame.type) {
      case "message.new":
        if (thread) thread.receive(frame.message, frame.replay);
        return;
      case "message.ack":
        if (thread) thread.ack(frame);
        return;
      case "resume.done":
        if (thread) thread.resumeDone(frame);
        return;
      case "error":
        if (frame.client_id && this.failSend(frame, thread)) return;
        break;
      default:
        break;
    }
    this.hooks.onFrame(frame);
  }

  /** Runs the handlers of a request's answer; an error without a `fail` handler goes on to onFrame. */
  answer(frame) {
    if (!frame.request_id || !this.requests.has(frame.request_id)) return false;
    const handlers = this.requests.get(frame.request_id);
    this.requests.delete(frame.request_id);
    if (frame.type === "error") {
      if (handlers.fail) handlers.fail(frame);
      else this.hooks.onFrame(frame);
    } else if (handlers.ok) {
      handlers.ok(frame);
    }
    return true;
  }

  failSend(frame, thread) {
    if (thread && thread.fail(frame)) return true;
    for (const other of this.threads.values()) if (other.fail(frame)) return true;
    return false;
  }

  failRequests() {
    for (const [id, handlers] of this.requests) {
      this.requests.delete(id);
      if (handlers.fail) handlers.fail({ code: "disconnected", message: "The connection was lost: try again." });
    }
  }

  closed(code) {
    this.socket = null;
    this.failRequests();
    const reconnecting = !FINAL_CLOSE_CODES.has(code);
    if (reconnecting) {
      // Jittered (half the backoff, plus up to half again at random): when a server restarts, its thousands
      // of clients come back spread over the interval instead of all in the same millisecond, again and again.
      // A busy server's return time is already spread and paced: taken as given (plus up to 250 ms of
      // jitter), and the backoff does not grow for it.
      let delay;
      if (code === CLOSE_UNAVAILABLE && this.retryAfterMs !== null) {
        delay = this.retryAfterMs + Math.random() * RETRY_AFTER_JITTER_MS;
      } else {
        delay = code === CLOSE_ACCESS_CHANGED ? 0 : this.backoffMs / 2 + Math.random() * (this.backoffMs / 2);
        this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
      }
      this.retryAfterMs = null;
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }
    this.hooks.onClose(code, { reconnecting });
  }
}
