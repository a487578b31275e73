// The console's boot data, its page elements, and the one state object every module reads.

export const boot = JSON.parse(document.getElementById("cc-boot").textContent);

const $ = (id) => document.getElementById(id);
export const ui = {
  tabs: $("cc-tabs"),
  homeTab: $("cc-tab-home"),
  main: $("cc-main"),
  homePane: $("cc-pane-home"),
  inboxTab: $("cc-tab-inbox"),
  inboxPane: $("cc-pane-inbox"),
  inboxList: $("cc-inbox-list"),
  inboxEmpty: $("cc-inbox-empty"),
  inboxError: $("cc-inbox-error"),
  inboxMore: $("cc-inbox-more"),
  inboxChannel: $("cc-inbox-channel"),
  inboxStatus: $("cc-inbox-status"),
  homeStatus: $("cc-home-status"),
  myChats: $("cc-my-chats"),
  myChatsEmpty: $("cc-my-chats-empty"),
  homeWaiting: $("cc-home-waiting"),
  homeWaitingEmpty: $("cc-home-waiting-empty"),
  waitingBtn: $("cc-waiting-btn"),
  waitingCount: $("cc-waiting-count"),
  waitingPanel: $("cc-waiting-panel"),
  waitingList: $("cc-waiting-list"),
  waitingEmpty: $("cc-waiting-empty"),
  presence: $("cc-presence"),
  presenceWrap: $("cc-presence-wrap"),
  missed: $("cc-missed"),
  missedClose: $("cc-missed-close"),
  notifyWrap: $("cc-notify-wrap"),
  notifyBtn: $("cc-notify-btn"),
  conn: $("cc-conn"),
  offers: $("cc-offers"),
  toasts: $("cc-toasts"),
  chatTemplate: $("cc-chat-template"),
};

export const state = {
  // pauseReasonName: why the agent is paused (a reason's name; null when not paused or no reason is known).
  me: { user_id: boot.userId, name: boot.agentName, presence: boot.presence, pauseReasonName: null },
  pauseReasons: [], // the reasons the agent may pick: [{id, name, paid}] from hello
  serverOffsetMs: 0, // server clock minus ours, from pong frames: waiting times use the server's clock
  chats: new Map(), // conversation id -> chat (see createChat)
  offers: new Map(), // conversation id -> {offer, el}
  waiting: new Map(), // conversation id -> waiting item
  dispositions: [],
  templates: [],
  limits: { max_chars: 4000 },
  active: "home",
  previous: "home",
  focusOnAssign: new Set(),
  titleTimer: null,
};
