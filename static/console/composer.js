// A chat's composer: reply or note, typing both ways, sending, files.

import { h } from "../js/dom.js";
import { errorToast } from "./attention.js";
import { contactName } from "./format.js";
import { messageNode } from "./messages.js";
import { api, send } from "./server.js";
import { refreshSmsCount } from "./sms.js";
import { state } from "./state.js";
import { closeMenus, fillTemplatesMenu, refreshUnfilled, selectUnfilled, toggleMenu } from "./templates.js";
import { showWhatsApp } from "./whatsapp.js";

const TYPING_IDLE_MS = 3000;
const TYPING_REPEAT_MS = 2000;
const EMOJI = [
  "😀", "😃", "😄", "😊", "🙂", "😉", "😍", "🤗", "🤔", "😅", "😂", "😢", "😮", "😎", "🙏", "👍",
  "👎", "👌", "👋", "👏", "💪", "🙌", "✅", "❌", "⚠️", "❗", "❓", "💡", "🎉", "🎁", "❤️", "💙",
  "⭐", "🔥", "⏰", "📦", "🚚", "📧", "📞", "💳", "🧾", "🔒", "🔧", "📎", "📅", "☕", "🌟", "👀",
];

export function onTyping(frame) {
  const chat = state.chats.get(frame.conversation_id);
  if (!chat) return;
  if (frame.side === "agent" && frame.user_id === state.me.user_id) return;
  if (!frame.is_typing) {
    hidePeerTyping(chat);
    return;
  }
  const name = frame.side === "visitor" ? contactName(chat.conv.contact) : frame.name || "A colleague";
  chat.els.typing.textContent = frame.private ? `${name} is writing a private note…` : `${name} is typing…`;
  clearTimeout(chat.peerTypingTimer);
  // A lost "stopped typing" frame must not leave the indicator on for ever.
  chat.peerTypingTimer = setTimeout(() => hidePeerTyping(chat), 8000);
}

export function hidePeerTyping(chat) {
  clearTimeout(chat.peerTypingTimer);
  chat.els.typing.textContent = "";
}

function stopTyping(chat) {
  clearTimeout(chat.typingIdleTimer);
  if (chat.typingSentAt) {
    chat.typingSentAt = 0;
    send({ type: "typing", conversation_id: chat.id, is_typing: false, private: chat.mode === "note" });
  }
}

function sendMessage(chat, body, attachments = [], localPreviews = {}) {
  const isNote = chat.mode === "note";
  const el = messageNode(
    chat,
    {
      sender: "agent",
      sender_user: { id: state.me.user_id, name: state.me.name },
      private: isNote,
      body,
      attachments,
      localPreviews,
      created_at: new Date().toISOString(),
    },
    { status: "sending" },
  );
  const fields = { conversation_id: chat.id, body, private: isNote, attachment_ids: attachments.map((a) => a.id) };
  chat.thread.send(fields, el); // sent once the chat is resumed
}

function submitText(chat) {
  const { text } = chat.els;
  const body = text.value.trim();
  if (!body) return;
  if (chat.mode !== "note" && refreshUnfilled(chat, { refused: true }).length) {
    selectUnfilled(chat);
    return;
  }
  if (body.length > state.limits.max_chars) {
    errorToast(`Messages can be at most ${state.limits.max_chars} characters.`);
    return;
  }
  text.value = "";
  chat.unfilled.clear();
  refreshUnfilled(chat);
  refreshSmsCount(chat);
  stopTyping(chat);
  sendMessage(chat, body);
  text.focus();
}

export function insertAtCursor(textarea, snippet) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? textarea.value.length;
  textarea.value = textarea.value.slice(0, start) + snippet + textarea.value.slice(end);
  textarea.selectionStart = textarea.selectionEnd = start + snippet.length;
  textarea.focus();
  textarea.dispatchEvent(new Event("input"));
}

// `{visitor_email}`, or `{visitor_name|there}` with a fallback: the pattern of agents/services.py.
export function wireComposer(chat) {
  const { els } = chat;
  els.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitText(chat);
    }
  });
  els.text.addEventListener("input", () => {
    if (chat.unfilled.size) refreshUnfilled(chat);
    refreshSmsCount(chat);
    if (!els.text.value.trim()) {
      stopTyping(chat);
      return;
    }
    const now = Date.now();
    if (now - chat.typingSentAt > TYPING_REPEAT_MS) {
      chat.typingSentAt = now;
      send({ type: "typing", conversation_id: chat.id, is_typing: true, private: chat.mode === "note" });
    }
    clearTimeout(chat.typingIdleTimer);
    chat.typingIdleTimer = setTimeout(() => stopTyping(chat), TYPING_IDLE_MS);
  });
  els.send.addEventListener("click", () => submitText(chat));

  for (const button of els.composer.querySelectorAll(".js-mode")) {
    button.addEventListener("click", () => {
      stopTyping(chat);
      chat.mode = button.dataset.mode;
      for (const other of els.composer.querySelectorAll(".js-mode")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      els.composer.classList.toggle("is-note-mode", chat.mode === "note");
      refreshSmsCount(chat);
      els.text.placeholder =
        chat.mode === "note"
          ? "Write a private note: only agents see it"
          : "Write a reply… Enter sends, Shift+Enter adds a line";
      els.send.textContent = chat.mode === "note" ? "Add note" : "Send";
      showWhatsApp(chat); // outside WhatsApp's window a reply is a template; a note is still text
      els.text.focus();
    });
  }

  els.templatesBtn.addEventListener("click", () => {
    fillTemplatesMenu(chat);
    toggleMenu(chat, els.templatesBtn, els.templatesMenu);
  });
  els.emojiGrid.replaceChildren(
    ...EMOJI.map((emoji) => {
      const button = h("button", { text: emoji, attrs: { type: "button", role: "menuitem", "aria-label": emoji } });
      button.addEventListener("click", () => {
        closeMenus(chat);
        insertAtCursor(els.text, emoji);
      });
      return button;
    }),
  );
  els.emojiBtn.addEventListener("click", () => toggleMenu(chat, els.emojiBtn, els.emojiMenu));

  els.attach.addEventListener("click", () => els.file.click());
  els.file.addEventListener("change", () => {
    const files = [...els.file.files];
    els.file.value = "";
    uploadFiles(chat, files);
  });
  // The grey area around the composer is the drop zone.
  els.composer.addEventListener("dragover", (event) => {
    if (chat.whisper) return; // a supervisor's whisper carries no files
    if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
    event.preventDefault();
    els.composer.classList.add("is-dragging");
  });
  els.composer.addEventListener("dragleave", (event) => {
    if (!els.composer.contains(event.relatedTarget)) els.composer.classList.remove("is-dragging");
  });
  els.composer.addEventListener("drop", (event) => {
    event.preventDefault();
    els.composer.classList.remove("is-dragging");
    if (chat.whisper) return;
    if (event.dataTransfer && event.dataTransfer.files.length) uploadFiles(chat, [...event.dataTransfer.files]);
  });
}

async function uploadFiles(chat, files) {
  for (const file of files) {
    const chip = h("span", { cls: "cc-pending-item", text: `Uploading ${file.name}…` });
    chat.els.pending.appendChild(chip);
    const form = new FormData();
    form.append("file", file);
    try {
      const { attachment } = await api(`/conversations/${chat.id}/uploads`, { method: "POST", form });
      chip.remove();
      const previews = file.type.startsWith("image/") ? { [attachment.id]: URL.createObjectURL(file) } : {};
      sendMessage(chat, "", [attachment], previews);
    } catch (error) {
      chip.textContent = `${file.name}: ${error.message}`;
      chip.classList.add("is-error");
      setTimeout(() => chip.remove(), 6000);
    }
  }
}
