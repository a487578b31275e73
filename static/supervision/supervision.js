/*
 * The supervision page (templates/supervision/index.html): the client of /ws/supervision/ (docs/protocol.md §4a).
 * Every `hello` and `supervision.snapshot` carries the whole state, so each one simply replaces what is shown;
 * waits tick here between snapshots. A supervisor's presence change is an `agent.presence.set` request.
 * Text from people (names, queue and pause reason names) only ever goes in through textContent.
 */

import { h } from "../js/dom.js";
import { ProtocolClient, socketUrl } from "../js/protocol.js";

const boot = JSON.parse(document.getElementById("sv-boot").textContent);
const $ = (id) => document.getElementById(id);

const STATE_LABEL = { online: "Online", busy: "Busy", away: "Away", paused: "Paused", offline: "Offline" };
const STATE_BADGE = { online: "badge-green", busy: "badge-blue", away: "badge-amber", paused: "badge-amber", offline: "badge-gray" };
const PAUSED = "paused:";

let snapshot = null;
let skewMs = 0; // the server's clock minus this browser's, from the last snapshot

/** "45 s", "3 min 12 s", "1 h 5 min"; "–" when there is nothing to show. */
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = whole % 60;
  if (hours) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  if (minutes) return secs ? `${minutes} min ${secs} s` : `${minutes} min`;
  return `${secs} s`;
}

function since(iso) {
  return iso ? (Date.now() + skewMs - Date.parse(iso)) / 1000 : null;
}

function cell(text, cls) {
  return h("td", { cls, text });
}

function renderToday(today) {
  $("sv-today-offered").textContent = today.offered;
  $("sv-today-answered").textContent = today.answered;
  $("sv-today-missed").textContent = today.missed;
  $("sv-today-abandoned").textContent = today.abandoned;
  $("sv-today-average").textContent = duration(today.average_wait_seconds);
  $("sv-today-p90").textContent = duration(today.p90_wait_seconds);
}

function queueRow(queue) {
  const places = queue.members_online ? String(queue.places_left) : "0 (nobody online)";
  const row = h("tr", { attrs: { "data-queue-id": String(queue.id) } }, [
    h("th", { text: queue.name, attrs: { scope: "row" } }),
    cell(queue.in_line, "sv-in-line"),
    cell(places, "sv-places-left"),
    cell(duration(since(queue.longest_wait_since)), "sv-longest-wait"),
    cell(queue.waiting, "sv-waiting"),
    cell(queue.members_online, "sv-members-online"),
    cell(queue.today.offered, "sv-offered"),
    cell(queue.today.answered, "sv-answered"),
    cell(queue.today.missed, "sv-missed"),
    cell(queue.today.abandoned, "sv-abandoned"),
    cell(duration(queue.today.average_wait_seconds), "sv-average"),
    cell(duration(queue.today.p90_wait_seconds), "sv-p90"),
  ]);
  row.dataset.since = queue.longest_wait_since || "";
  return row;
}

function renderQueues(queues, unrouted) {
  $("sv-queue-rows").replaceChildren(...queues.map(queueRow));
  $("sv-queues-empty").hidden = queues.length > 0;
  const note = $("sv-unrouted");
  note.hidden = !unrouted;
  note.textContent = unrouted ? `${unrouted} waiting conversation(s) routed to no queue.` : "";
}

function presenceValue(agent) {
  if (agent.presence !== "paused") return agent.presence;
  const reason = snapshot.pause_reasons.find((r) => r.name === agent.pause_reason);
  return reason ? `${PAUSED}${reason.id}` : "current";
}

function presenceSelect(agent) {
  const select = h("select", { cls: "sv-presence", attrs: { "aria-label": `Presence of ${agent.name}` } });
  const options = [["online", "Online"], ["away", "Away"]];
  for (const reason of snapshot.pause_reasons) options.push([`${PAUSED}${reason.id}`, `Paused: ${reason.name}`]);
  options.push(["offline", "Offline"]);
  const value = presenceValue(agent);
  if (value === "current") options.unshift(["current", `Paused: ${agent.pause_reason || "other"}`]);
  for (const [optionValue, label] of options) {
    const option = h("option", { text: label, attrs: { value: optionValue } });
    if (optionValue === "current") option.disabled = true;
    select.appendChild(option);
  }
  select.value = value;
  select.addEventListener("change", () => setPresence(agent, select));
  return select;
}

function agentRow(agent) {
  const state = h("span", { cls: `badge ${STATE_BADGE[agent.state] || "badge-gray"} sv-state`, text: STATE_LABEL[agent.state] || agent.state });
  const stateCell = h("td", {}, [state]);
  if (agent.pause_reason) stateCell.appendChild(h("span", { cls: "sv-reason muted small", text: ` ${agent.pause_reason}` }));
  const row = h("tr", { attrs: { "data-user-id": String(agent.user_id), "data-state": agent.state } }, [
    h("th", { text: agent.name, attrs: { scope: "row" } }),
    stateCell,
    cell(`${agent.chats} / ${agent.max_chats}`, "sv-chats"),
    cell(agent.offers, "sv-offers"),
    cell(duration(since(agent.presence_since)), "sv-since"),
    h("td", {}, [presenceSelect(agent)]),
  ]);
  row.dataset.since = agent.presence_since || "";
  return row;
}

function renderAgents(agents, counts) {
  // A select being used keeps its row: the next snapshot after the change (or the blur) replaces it.
  const busy = document.activeElement && document.activeElement.closest("#sv-agent-rows tr");
  const rows = agents.map((agent) => {
    if (busy && busy.dataset.userId === String(agent.user_id)) return busy;
    return agentRow(agent);
  });
  $("sv-agent-rows").replaceChildren(...rows);
  for (const [state, count] of Object.entries(counts)) {
    const target = $(`sv-count-${state}`);
    if (target) target.textContent = count;
  }
}

function render(next) {
  snapshot = next;
  skewMs = Date.parse(next.generated_at) - Date.now();
  $("sv-day-start").textContent = new Date(next.day_start).toLocaleString();
  renderToday(next.today);
  renderQueues(next.queues, next.unrouted_waiting);
  renderAgents(next.agents, next.agent_counts);
}

function showError(text) {
  const error = $("sv-error");
  error.textContent = text;
  error.hidden = !text;
}

function setPresence(agent, select) {
  const wanted = select.value;
  const frame = { type: "agent.presence.set", user_id: agent.user_id, presence: wanted };
  if (wanted.startsWith(PAUSED)) {
    frame.presence = "paused";
    frame.pause_reason_id = Number(wanted.slice(PAUSED.length));
  }
  select.disabled = true;
  client.request(frame, {
    ok: () => {
      showError("");
      select.disabled = false;
      select.blur(); // the snapshot that follows redraws the row
    },
    fail: (error) => {
      select.disabled = false;
      select.value = presenceValue(agent);
      showError(`${agent.name}: ${error.message}`);
    },
  });
}

function showConn(text, isError = false) {
  const conn = $("sv-conn");
  conn.textContent = text;
  conn.classList.toggle("is-error", isError);
}

const client = new ProtocolClient({
  url: () => socketUrl("/ws/supervision/"),
  onOpen: () => showConn("Live"),
  onFrame: (frame) => {
    if (frame.type === "hello" || frame.type === "supervision.snapshot") render(frame.snapshot);
    else if (frame.type === "error") showError(frame.message);
  },
  onClose: (code, { reconnecting }) => {
    if (code === 4401) location.href = boot.loginUrl;
    else if (code === 4403) showConn("This account may not supervise.", true);
    else if (reconnecting) showConn("Connection lost. Reconnecting…", true);
  },
});

// Waits grow between snapshots.
setInterval(() => {
  for (const row of document.querySelectorAll("#sv-queue-rows tr")) {
    row.querySelector(".sv-longest-wait").textContent = duration(since(row.dataset.since || null));
  }
  for (const row of document.querySelectorAll("#sv-agent-rows tr")) {
    row.querySelector(".sv-since").textContent = duration(since(row.dataset.since || null));
  }
}, 1000);

client.connect();
