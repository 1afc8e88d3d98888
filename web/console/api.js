// The console's calls to the REST API. A signed-in operator's session cookie goes with every
// call (credentials: same-origin), and each change carries the session's CSRF token; the
// admin key typed into the sign-in form rides instead as a bearer credential, kept in this
// tab's session storage only.

import { ApiError } from "../sessionlog.js";

export const KEY = "pairwise.adminKey"; // the program-health page keeps it under the same name

let onSignedOut = () => {};
let csrf = null;

/** The signed-in session's CSRF token (a change made with the cookie needs it). */
async function csrfToken() {
  if (csrf) return csrf;
  const response = await fetch("/api/v1/signin/session", { credentials: "same-origin" });
  if (response.ok) csrf = (await response.json()).csrf;
  return csrf;
}

/** What to do when the server says the caller is not signed in (401). */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

/** Call the API: JSON in (or `raw` text with its content type), JSON out. */
export async function call(method, path, body, { raw, type } = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = `Bearer ${key}`;
  else if (method !== "GET" && method !== "HEAD") {
    const token = await csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let payload;
  if (raw !== undefined) {
    headers["Content-Type"] = type;
    payload = raw;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
  const data = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const error = isJson && data.error ? data.error : { code: "http", message: response.statusText };
    if (response.status === 401) onSignedOut(error.message);
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

export const enc = encodeURIComponent;
