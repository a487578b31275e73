// The hosted chat page (/chat/<public_key>/, docs/auth-codes.md): a link an agent sent by SMS, WhatsApp or email
// carries a sign-in code in its fragment (#code=…, which browsers never send to a server). The page takes it out of
// the address bar at once (a reload or a shared URL never reuses it) and initialises the widget with it; the
// loader opens the chat with its history. A code that no longer works is said on the page in words, and the widget
// starts as a new anonymous visitor, so the customer can still write. Without a code (a reload after signing in),
// the widget goes on as the visitor this browser already is.

(() => {
  const status = document.getElementById("hosted-status");
  const code = new URLSearchParams(window.location.hash.slice(1)).get("code") || "";
  if (window.location.hash) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function say(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  const switchboard = window.Switchboard;
  if (!switchboard || typeof switchboard.init !== "function") {
    say("The chat could not load. Please try again later.");
    return;
  }
  if (!code) {
    switchboard.init().catch((error) => say(error.message));
    return;
  }
  switchboard.init({ authCode: code }).catch((error) => {
    say(`${error.message} Ask us for a new link, or start a new chat with the button below.`);
    switchboard.init().catch((again) => say(again.message));
  });
})();
