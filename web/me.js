// /me: a signed-in participant's home. Their pairs with the partner's name, "Join" (a
// short-lived room token minted from the session on demand), the pair's log, their sessions.

import { call, signOut, signedIn } from "/static/session.js";

const $ = (id) => document.getElementById(id);

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/** Mint a room token for the pair and go where `pick` says (the room, or the log). */
async function open(pair, pick, button) {
  $("pair-error").textContent = "";
  button.disabled = true;
  try {
    const minted = await call("POST", `/api/v1/home/pairs/${encodeURIComponent(pair.id)}/join`);
    location.assign(pick(minted));
  } catch (error) {
    $("pair-error").textContent = error.message;
    button.disabled = false;
  }
}

function pairCard(pair) {
  const partners = pair.partners.map((p) => `${p.name} (${p.role})`).join(", ");
  const card = element(
    "article",
    { className: "card pair-card" },
    element("h2", { dir: "auto", textContent: pair.title }),
    element("p", { className: "partner", dir: "auto", textContent: `With ${partners}` }),
  );
  if (!pair.room_open) {
    card.append(element("p", { className: "muted", textContent: "This pair's mentoring has ended." }));
    return card;
  }
  const join = element("button", { type: "button", className: "primary", textContent: "Join" });
  join.dataset.pair = pair.id;
  join.addEventListener("click", () => open(pair, (m) => m.join_url, join));
  const log = element("button", { type: "button", className: "secondary", textContent: "Our log" });
  log.addEventListener("click", () => open(pair, (m) => m.log_url, log));
  card.append(element("div", { className: "signin-actions" }, join, log));
  return card;
}

async function showSessions(currentId) {
  const { sessions } = await call("GET", "/api/v1/signin/sessions");
  const list = $("sessions");
  list.replaceChildren(
    ...sessions.map((s) => {
      const since = new Date(s.created_at * 1000).toLocaleString();
      const item = element(
        "li",
        {},
        element("span", { className: "agent", textContent: `${s.user_agent || "A browser"} · since ${since}` }),
      );
      if (s.id === currentId) {
        item.append(element("b", { textContent: "this browser" }));
      } else {
        const end = element("button", { type: "button", textContent: "Sign out" });
        end.addEventListener("click", async () => {
          await call("DELETE", `/api/v1/signin/sessions/${s.id}`);
          await showSessions(currentId);
        });
        item.append(end);
      }
      return item;
    }),
  );
}

async function main() {
  const me = await signedIn();
  if (!me) return location.replace("/signin");
  if (me.home !== "/me") return location.replace(me.home);
  const home = await call("GET", "/api/v1/home");
  $("name").textContent = home.account.name;
  $("pairs").replaceChildren(...home.pairs.map(pairCard));
  $("no-pairs").hidden = home.pairs.length > 0;
  $("signout").hidden = false;
  $("signout").addEventListener("click", async () => {
    await signOut();
    location.replace("/signin");
  });
  $("signout-everywhere").addEventListener("click", async () => {
    await signOut(true);
    location.replace("/signin");
  });
  await showSessions(me.session_id);
  $("loading").hidden = true;
  $("home").hidden = false;
}

main().catch((error) => {
  $("loading").textContent = error.message;
});
