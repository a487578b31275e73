/*
 * Switchboard agent console: the agent's side of docs/protocol.md (§4 agent socket, §7 console HTTP API).
 * The entry module of templates/agents/console.html; the concepts live in the modules beside it.
 *
 * One socket (/ws/agent/, server.js) carries offers, the waiting list, presence and every open chat. Each
 * accepted chat gets a tab and a pane cloned from <template id="cc-chat-template"> (chat.js), and a
 * thread of the shared protocol client (static/js/protocol.js) that places its messages by seq.
 *
 * Rules kept throughout:
 *   - text from people (messages, names, survey answers, file names, server messages) only ever goes
 *     into the page through textContent, never as HTML;
 *   - own messages show at once as "Sending", become "Sent" on their ack, and are resent with the
 *     same client_id after a reconnect until acked (the server dedupes);
 *   - after every (re)connect each open chat is resumed from its highest seq: the database is the truth.
 */

import { tickCountdown, tickCounter } from "./format.js";
import { loadSessionChannels } from "./new-session.js";
import { setPresence } from "./presence.js";
import "./reminders.js";
import { client } from "./server.js";
import { boot } from "./state.js";
import { activate, renderHome } from "./tabs.js";
import { renderWaiting } from "./waiting.js";

setInterval(() => {
  document.querySelectorAll(".js-counter").forEach(tickCounter);
  document.querySelectorAll(".js-countdown").forEach(tickCountdown);
}, 1000);

setPresence(boot.presence);
renderWaiting();
renderHome();
activate("home");
client.connect();
loadSessionChannels();
