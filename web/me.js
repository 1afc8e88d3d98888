// /me: a signed-in participant's home. Their pairs with the partner's name and profile (and
// their local time), the pair's next meeting in the viewer's zone, "Join" and "Chat" (a
// short-lived room token minted from the session on demand; Chat enters in text, no camera
// or microphone), the pair's log, their sessions, and how they want to hear about reminders
// and new messages (email, this device's push).

import { call, deviceName, signOut, signedIn } from "/static/session.js";

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

/** "Tue 4 Mar, 14:00": `date` on the clock of `timeZone` (undefined: this browser's). */
function clock(date, timeZone, withDay = true) {
  const day = withDay ? { weekday: "short", day: "numeric", month: "short" } : {};
  return new Intl.DateTimeFormat(undefined, { ...day, hour: "2-digit", minute: "2-digit", timeZone }).format(date);
}

/** Each partner's local time, kept current while the page is open. */
const localClocks = [];
setInterval(() => {
  for (const [node, zone] of localClocks) node.textContent = clock(new Date(), zone, false);
}, 30_000);

/** What the partner's matching profile lets a partner see: zone and local time, languages,
 * skills, goals (only the fields they have; nothing without a profile). */
function partnerProfile(partner) {
  const list = element("dl", { className: "profile" });
  const row = (term, ...value) => list.append(element("dt", { textContent: term }), element("dd", { dir: "auto" }, ...value));
  if (partner.timezone) {
    const now = element("span", { className: "local-time", textContent: clock(new Date(), partner.timezone, false) });
    localClocks.push([now, partner.timezone]);
    row("Local time", now, ` (${partner.timezone})`);
  }
  for (const [key, term] of [["languages", "Languages"], ["skills", "Skills"], ["goals", "Goals"]]) {
    if (partner[key].length) row(term, partner[key].join(", "));
  }
  if (!list.childElementCount) return ""; // no matching profile: the name says it all
  return element("section", { className: "partner-profile" },
    element("h3", { dir: "auto", textContent: `About ${partner.name}` }), list);
}

/** The pair's next booked meeting on the viewer's clock, or a way to book one on /pair. */
function nextMeeting(pair, zone) {
  const line = element("p", { className: "next-meeting" });
  if (pair.next_meeting) {
    const shown = zone || Intl.DateTimeFormat().resolvedOptions().timeZone;
    line.append(element("b", { textContent: "Next meeting: " }),
      element("time", { dateTime: pair.next_meeting.start, dir: "auto",
        textContent: `${clock(new Date(pair.next_meeting.start), zone)} (${shown})` }),
      ` · ${pair.next_meeting.title}`);
    return line;
  }
  line.append(element("b", { textContent: "Next meeting: " }), "none booked. ");
  if (pair.room_open) {
    const book = element("button", { type: "button", className: "link-button", textContent: "Book one" });
    book.addEventListener("click", () => open(pair, (m) => m.log_url, book));
    line.append(book);
  }
  return line;
}

/** How many of the partner's messages wait unread (since this person last saw the chat). */
function unreadLine(pair) {
  const count = pair.unread || 0;
  const from = pair.partners.map((p) => p.name).join(", ");
  const line = element("p", { className: "unread-line", dir: "auto" });
  line.dataset.count = String(count);
  if (!count) line.textContent = "No unread messages.";
  else line.append(element("b", { className: "unread-count", textContent: String(count) }),
    ` unread message${count === 1 ? "" : "s"} from ${from}`);
  return line;
}

function pairCard(pair, zone) {
  const partners = pair.partners.map((p) => `${p.name} (${p.role})`).join(", ");
  const card = element(
    "article",
    { className: "card pair-card" },
    element("h2", { dir: "auto", textContent: pair.title }),
    element("p", { className: "partner", dir: "auto", textContent: `With ${partners}` }),
    ...pair.partners.map(partnerProfile),
  );
  if (!pair.room_open) {
    card.append(element("p", { className: "muted", textContent: "This pair's mentoring has ended." }));
    return card;
  }
  card.append(nextMeeting(pair, zone), unreadLine(pair));
  const join = element("button", { type: "button", className: "primary", textContent: "Join" });
  join.dataset.pair = pair.id;
  join.addEventListener("click", () => open(pair, (m) => m.join_url, join));
  // Between meetings: the room's chat, no camera or microphone asked for.
  const chat = element("button", { type: "button", className: "secondary", textContent: "Chat" });
  chat.addEventListener("click", () => open(pair, (m) => `${m.join_url}&mode=text`, chat));
  const log = element("button", { type: "button", className: "secondary", textContent: "Our log" });
  log.addEventListener("click", () => open(pair, (m) => m.log_url, log));
  card.append(element("div", { className: "signin-actions" }, join, chat, log));
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
        element("span", { className: "agent", title: s.user_agent || "", textContent: `${deviceName(s.user_agent)} · since ${since}` }),
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

const TOPICS = ["reminders", "messages"];

/** The VAPID key as the bytes pushManager.subscribe wants. */
function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function showChannels(state) {
  for (const topic of TOPICS) {
    $(`${topic}-email`).checked = state.channels[topic].email;
    $(`${topic}-push`).checked = state.channels[topic].push;
  }
}

async function showPush(registration, state) {
  const supported = registration && "PushManager" in window && "Notification" in window;
  const subscription = supported ? await registration.pushManager.getSubscription() : null;
  $("push-enable").hidden = !supported || Boolean(subscription);
  $("push-disable").hidden = !subscription;
  $("push-state").textContent = !supported
    ? "This browser cannot show notifications from Pairwise; email still reaches you."
    : subscription
      ? "This device shows notifications from Pairwise."
      : state.subscriptions > 0
        ? "Notifications go to another device of yours."
        : "Notifications are off on this device.";
}

async function notifications(registration) {
  let state = await call("GET", "/api/v1/home/notifications");
  showChannels(state);
  await showPush(registration, state);
  const fail = (error) => {
    $("push-error").textContent = error.message;
  };
  $("push-enable").addEventListener("click", async () => {
    $("push-error").textContent = "";
    try {
      if ((await Notification.requestPermission()) !== "granted") {
        throw new Error("Notifications are blocked for this site in your browser's settings.");
      }
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(state.public_key),
      });
      state = await call("POST", "/api/v1/home/push/subscriptions", subscription.toJSON());
      await showPush(registration, state);
    } catch (error) {
      fail(error);
    }
  });
  $("push-disable").addEventListener("click", async () => {
    $("push-error").textContent = "";
    try {
      const subscription = await registration.pushManager.getSubscription();
      if (subscription) {
        state = await call("DELETE", "/api/v1/home/push/subscriptions", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
      }
      await showPush(registration, state);
    } catch (error) {
      fail(error);
    }
  });
  for (const topic of TOPICS) {
    for (const channel of ["email", "push"]) {
      $(`${topic}-${channel}`).addEventListener("change", async () => {
        $("channels-saved").textContent = "";
        const chosen = { email: $(`${topic}-email`).checked, push: $(`${topic}-push`).checked };
        try {
          state = await call("PUT", "/api/v1/home/notifications/channels", { [topic]: chosen });
          showChannels(state);
          $("channels-saved").textContent = "Saved.";
        } catch (error) {
          fail(error);
        }
      });
    }
  }
}

/** The service worker (root scope): it shows what is pushed and opens /me on a click. */
async function worker() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    return await navigator.serviceWorker.ready;
  } catch {
    return null; // no HTTPS (other than localhost): no worker, no push; email still works
  }
}

async function main() {
  const me = await signedIn();
  if (!me) return location.replace("/signin");
  if (me.home !== "/me") return location.replace(me.home);
  const home = await call("GET", "/api/v1/home");
  $("name").textContent = home.account.name;
  $("pairs").replaceChildren(...home.pairs.map((pair) => pairCard(pair, home.timezone || undefined)));
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
  await notifications(await worker());
}

main().catch((error) => {
  $("loading").textContent = error.message;
});
