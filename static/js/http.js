/*
 * The one JSON fetch helper of the widget and the console (docs/protocol.md §6, §7). Errors come back from
 * the server as {"error": {"code", "message", "fields", "retry_after"?}}: they are thrown as ApiError.
 */

export class ApiError extends Error {
  constructor(status, error, retryAfter = 0) {
    super((error && error.message) || `HTTP ${status}`);
    this.status = status; // 0: the request never got an answer
    this.code = (error && error.code) || "error";
    this.fields = (error && error.fields) || {};
    // Seconds to wait before trying again (429): from the body, else the Retry-After header.
    this.retryAfter = Number(error && error.retry_after) || retryAfter;
    // The whole error, for codes that carry more (session_exists: the open conversation_id).
    this.data = error || {};
  }
}

/** The value of Django's csrftoken cookie, for the X-CSRFToken header of unsafe requests. */
export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Sends one request and returns its JSON body (null when there is none); throws ApiError for an error
 * status, or status 0 with `offlineMessage` when the server cannot be reached.
 *   json: an object sent as the JSON body; form: a FormData body (multipart uploads);
 *   headers: extra headers; csrf: add X-CSRFToken to unsafe methods (session-authenticated APIs);
 *   credentials, cache: as fetch() takes them.
 */
export async function api(
  url,
  {
    method = "GET",
    json,
    form,
    headers = {},
    csrf = false,
    credentials = "same-origin",
    cache = "default",
    offlineMessage = "The server cannot be reached.",
  } = {},
) {
  const sent = { Accept: "application/json", ...headers };
  if (json) sent["Content-Type"] = "application/json";
  if (csrf && !SAFE_METHODS.has(method)) sent["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body: json ? JSON.stringify(json) : form, credentials, cache });
  } catch (_) {
    throw new ApiError(0, { code: "network", message: offlineMessage });
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data && data.error, Number(response.headers.get("Retry-After")) || 0);
  }
  return data;
}
