// /signin: ask for a link by email, or confirm the link this page was opened with.
// Opening a link signs nobody in: the page asks "Sign in as …?" and only pressing the
// button (a POST carrying a CSRF token tied to this browser) uses the link up.

import { failure, signedIn } from "/static/session.js";

const $ = (id) => document.getElementById(id);

/** The link's secret from the address (then taken out of the address bar and history). */
function takeLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  const link = params.get("link");
  if (link || params.has("error")) history.replaceState(null, "", location.pathname);
  if (params.has("error")) $("ask-error").textContent = params.get("error");
  return link;
}

async function post(path, body, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

async function confirm(link) {
  const section = $("confirm");
  try {
    const who = await post("/api/v1/signin/preview", { link });
    $("confirm-email").textContent = who.email;
    const other = who.signed_in_as && who.signed_in_as !== who.email;
    $("confirm-other").hidden = !other;
    if (other) {
      $("current-email").textContent = who.signed_in_as;
      $("confirm-button").textContent = `Sign in as ${who.email} instead`;
    }
    section.hidden = false;
    $("confirm-button").addEventListener("click", async () => {
      $("confirm-button").disabled = true;
      try {
        const done = await post(
          "/api/v1/signin/confirm",
          { link, replace: Boolean(other) },
          { "X-CSRF-Token": who.csrf },
        );
        location.assign(done.home);
      } catch (error) {
        $("confirm-error").textContent = error.message;
        $("confirm-button").disabled = false;
      }
    });
  } catch (error) {
    // A used, expired or mistyped link: say so plainly, and offer a new one.
    section.hidden = false;
    section.querySelector("h1").textContent = "This sign-in link does not work";
    section.querySelector(".who").hidden = true;
    $("confirm-button").hidden = true;
    $("confirm-error").textContent = error.message;
    $("confirm-cancel").textContent = "Ask for a new link";
  }
}

async function ask() {
  const me = await signedIn().catch(() => null);
  if (me) {
    $("already-email").textContent = me.account.email;
    $("already-home").href = me.home;
    $("already").hidden = false;
  }
  const form = $("ask");
  form.hidden = false;
  fetch("/api/v1/signin/options")
    .then((r) => (r.ok ? r.json() : {}))
    .then((options) => ($("oidc").hidden = !options.oidc));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("ask-error").textContent = "";
    $("ask-button").disabled = true;
    try {
      const answer = await post("/api/v1/signin/links", { email: $("email").value });
      $("ask-status").textContent = `${answer.message} Check your inbox.`;
    } catch (error) {
      $("ask-error").textContent = error.message;
    } finally {
      $("ask-button").disabled = false;
    }
  });
}

const link = takeLink();
if (link) confirm(link);
else ask();
// A link opened in the tab that asked for it changes only the fragment: confirm it here.
window.addEventListener("hashchange", () => {
  const next = takeLink();
  if (!next) return;
  for (const id of ["ask", "already"]) $(id).hidden = true;
  confirm(next);
});
