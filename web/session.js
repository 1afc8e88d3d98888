// The signed-in person's session, for every page that needs one (/me, /signin, the console).
// The cookie is HttpOnly: pages never see it. They ask who is signed in, and send the CSRF
// token that comes with that answer on every change (the server refuses a change without it).

let current = null;

/** Who is signed in ({account, csrf, session_id, home}), or null. */
export async function signedIn() {
  const response = await fetch("/api/v1/signin/session", { credentials: "same-origin" });
  if (response.status === 401) return (current = null);
  if (!response.ok) throw await failure(response);
  return (current = await response.json());
}

/** Call the API as the signed-in person; changes carry the CSRF token. */
export async function call(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    if (!current) await signedIn();
    if (current) headers["X-CSRF-Token"] = current.csrf;
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

/** An Error carrying the server's message and code. */
export async function failure(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const payload = await response.json();
    code = payload.error?.code ?? code;
    message = payload.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  const error = new Error(message);
  error.code = code;
  error.status = response.status;
  return error;
}

export async function signOut(everywhere = false) {
  await call("POST", everywhere ? "/api/v1/signin/signout-everywhere" : "/api/v1/signin/signout");
  current = null;
}

/** A browser as a person names it ("Chrome on Linux") from its user agent; the raw string
 * (cut short) when it is not one of the common ones. */
export function deviceName(agent) {
  if (!agent) return "A browser";
  const browser = (/(Edg|Firefox|Chrome|Safari)\/[\d.]+/.exec(agent) || [])[1];
  const system = (/(Android|iPhone|iPad|Windows|Mac OS X|Linux)/.exec(agent) || [])[1];
  if (!browser || !system) return agent.slice(0, 60);
  return `${browser === "Edg" ? "Edge" : browser} on ${system === "Mac OS X" ? "macOS" : system}`;
}
