// The pair page: upcoming agenda, goals, past sessions with a strip of media modes over
// time, and feedback. Members sign in with their join token (the one from their meeting link).

import { plainReason } from "./client/reasons.js";
import { act, api, bdi, download, el, minutes, svg, when } from "./sessionlog.js";
import { timelineWords } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "pairwise.token"; // the join page keeps the token under the same key
const MODES = ["video", "audio", "text", "phone"];
const SESSIONS_WITH_DETAIL = 10;

const state = { token: null, me: null, pair: null, feedback: new Map() };

function takeToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromLink = params.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A member's name as the pair knows it (identities are login ids: never shown). */
function nameOf(identity) {
  return state.pair?.members.find((m) => m.identity === identity)?.name || "A former member";
}

/** The API with this page's token. fetch rejects a request the network dropped with a bare
 * TypeError ("Failed to fetch" in Chromium): wherever it is shown, it is said in words. */
const call = (method, path, body) => api(state.token, method, path, body).catch((error) => {
  throw error instanceof TypeError ? new Error("the server could not be reached", { cause: error }) : error;
});
const base = () => `/api/v1/pairs/${encodeURIComponent(state.pair.id)}`;

const MODE_WORDS = { video: "video", audio: "audio only", text: "text chat", phone: "phone" };

/** One row per participant: their name in page text (readable at any width), then a bar
 * with a coloured stretch for each media mode over the session's time. */
function mediaStrip(detail) {
  const start = detail.session.started_at;
  const end = detail.session.ended_at || Date.now() / 1000;
  const span = Math.max(end - start, 1);
  const width = 600;
  const rows = Object.keys(detail.media_path).map((identity) => {
    const bar = svg("svg", { viewBox: `0 0 ${width} 14`, preserveAspectRatio: "none", class: "strip-bar",
      "aria-hidden": "true" });
    for (const segment of detail.media_path[identity]) {
      const x0 = ((segment.started_at - start) / span) * width;
      const x1 = (((segment.ended_at || end) - start) / span) * width;
      const mode = MODES.includes(segment.mode) ? segment.mode : "text";
      const rect = svg("rect", { x: x0, y: 0, width: Math.max(x1 - x0, 1), height: 14, class: `mode-${mode}` });
      const why = segment.previous ? ` (from ${MODE_WORDS[segment.previous] || "another mode"}: ${plainReason(segment.reason)})` : "";
      // No name in the tooltip: the row's name beside it is isolated text (<bdi>); a tooltip
      // is plain text, where a name's U+202E would reverse the words after it.
      rect.append(svg("title", {}, `${MODE_WORDS[mode]}${why}`));
      bar.append(rect);
    }
    const modes = [...new Set(detail.media_path[identity].map((s) => MODE_WORDS[s.mode] || "text chat"))];
    return el("li", { class: "strip-row" }, el("span", { class: "strip-name" }, bdi(nameOf(identity))), bar,
      el("span", { class: "visually-hidden" }, `: ${modes.join(", then ")}`));
  });
  return el("ul", { class: "strip", "aria-label": "Media modes over time" }, ...rows);
}

/** What the log noted beside the media path (a phone caller refused), in words. */
function noted(detail) {
  const lines = detail.timeline.map((entry) => [entry.ts, timelineWords(entry)]).filter(([, words]) => words);
  if (!lines.length) return null;
  return el("ul", { class: "log-list", "aria-label": "Also in the log" },
    ...lines.map(([ts, words]) => el("li", {}, `${when(ts)}: ${words}`)));
}

function feedbackForm(session) {
  const mine = state.feedback.get(session.id);
  if (mine) return el("p", { class: "muted" }, `Your rating: ${"★".repeat(mine.rating)}`, mine.comment ? " — " : null, mine.comment ? bdi(mine.comment) : null);
  if (session.in_progress) return null;
  // Only who was there rates a meeting.
  if (session.participants && !session.participants.includes(state.me)) {
    return el("p", { class: "muted" }, "You were not in this meeting.");
  }
  // No rating is chosen for the person: they pick one (required) or send nothing.
  const rating = el("select", { "aria-label": "Rating", required: true },
    el("option", { value: "" }, "Rate this meeting…"),
    ...[5, 4, 3, 2, 1].map((n) => el("option", { value: n }, `${n} ★`)));
  const comment = el("input", { maxlength: 4000, placeholder: "A comment (optional)", "aria-label": "Comment" });
  const badFit = el("input", { type: "checkbox" });
  const form = el("form", { class: "log-inline", id: `feedback-${session.id}` },
    rating, comment, el("label", { class: "log-check" }, badFit, " Not a good fit"),
    el("button", { type: "submit" }, "Send feedback"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(form, "Your feedback was not sent", async () => {
      const given = await call("POST", `${base()}/sessions/${session.id}/feedback`, {
        rating: Number(rating.value), comment: comment.value || null, good_fit: !badFit.checked,
      });
      state.feedback.set(session.id, given);
      form.replaceWith(feedbackForm(session));
    });
  });
  return form;
}

async function renderSessions() {
  const { sessions } = await call("GET", `${base()}/sessions`);
  const details = await Promise.all(sessions.slice(0, SESSIONS_WITH_DETAIL)
    .map((s) => call("GET", `${base()}/sessions/${s.id}`)));
  const items = sessions.map((s, i) => {
    const detail = details[i];
    const steps = s.fallback_steps.length ? `fell back: ${s.fallback_steps.map((step) => plainStep(step)).join(", ")}` : "no fallback";
    return el("article", { class: "log-card log-session" },
      el("h3", {}, `${when(s.started_at)} · ${s.in_progress ? "in progress" : minutes(s.duration_seconds)}`),
      el("p", { class: "muted" }, ...s.participants.flatMap((id, j) => [j ? ", " : "", bdi(nameOf(id))]), ` · ${steps}`),
      detail ? mediaStrip(detail) : null,
      detail ? noted(detail) : null,
      detail && detail.agenda_done.length ? el("p", {}, "Ticked off: ", ...detail.agenda_done.flatMap((t, j) => (j ? ["; ", bdi(t)] : [bdi(t)]))) : null,
      detail && detail.notes.length ? el("ul", {}, ...detail.notes.map((n) => el("li", {}, bdi(nameOf(n.author)), ": ", bdi(n.text)))) : null,
      feedbackForm(s));
  });
  $("sessions").replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, "No sessions yet.")]));
  const wanted = new URLSearchParams(location.hash.slice(1)).get("feedback");
  if (wanted) document.getElementById(`feedback-${wanted}`)?.querySelector("select")?.focus();
}

async function renderAgenda() {
  const { items } = await call("GET", `${base()}/agenda`);
  $("agenda").replaceChildren(...(items.length ? items.map((item) => {
    const box = el("input", { type: "checkbox", "aria-label": `Done: ${item.text}` });
    box.addEventListener("change", () => act($("agenda-form"), "Could not change this agenda item", async () => {
      await call("PATCH", `${base()}/agenda/${item.id}`, { done: box.checked });
      await renderAgenda();
    }));
    const carried = item.carried_over ? el("span", { class: "log-badge" }, `carried over ×${item.carried_over}`) : null;
    return el("li", {}, el("label", { class: "log-check" }, box, " ", bdi(item.text), " "), carried,
      el("span", { class: "muted" }, " — ", bdi(nameOf(item.added_by))));
  }) : [el("li", { class: "muted" }, "Nothing on the agenda yet.")]));
}

async function renderGoals() {
  const { goals } = await call("GET", `${base()}/goals`);
  $("goals").replaceChildren(...(goals.length ? goals.map((goal) => {
    const progress = el("input", { type: "range", min: 0, max: 100, step: 5, value: goal.progress,
      "aria-label": `Progress of ${goal.title}` });
    const shown = el("output", {}, `${goal.progress}%`);
    progress.addEventListener("input", () => { shown.textContent = `${progress.value}%`; });
    progress.addEventListener("change", () => act($("goal-form"), "Could not save the goal's progress", async () => {
      const value = Number(progress.value);
      await call("PATCH", `${base()}/goals/${goal.id}`, { progress: value, status: value === 100 ? "done" : goal.status });
      await renderGoals();
    }));
    const due = goal.due_date ? ` · due ${goal.due_date}` : "";
    return el("li", { class: `goal goal-${goal.status}` }, el("span", {}, bdi(goal.title), `${due} · ${goal.status}`),
      progress, shown);
  }) : [el("li", { class: "muted" }, "No goals yet.")]));
}

/** Once the pair is shown, its token was accepted: a part of the page that fails to load (the
 * network dropped, the server failed) is said near the top with a Try again, not by asking
 * for the token again. Never rejects. */
async function showPair() {
  $("pair-error").replaceChildren(); // an earlier notice is about an earlier drawing
  await renderPair().catch(partDidNotLoad);
}

/** #pair-error holds only this notice (what she did that failed is said beside it: `act`). */
function partDidNotLoad(error) {
  $("pair-error").replaceChildren(didNotLoad(
    `Part of this page could not load (${error.message}). Check your connection, then try again.`, showPair));
}

async function renderPair() {
  const pair = state.pair;
  $("pair-heading").textContent = pair.title;
  $("pair-title").textContent = pair.title;
  $("members").replaceChildren(...pair.members.flatMap((m, i) => [i ? " · " : "", bdi(m.name), ` (${m.role})`]));
  const { feedback } = await call("GET", `${base()}/feedback`);
  state.feedback = new Map(feedback.map((f) => [f.session_id, f]));
  await Promise.all([renderAgenda(), renderGoals(), renderSessions(), renderMeetings()]);
}

/** The meetings section, whose code is fetched only now. A failed fetch (the network
 * changed under the page: net::ERR_NETWORK_CHANGED) rejects the import, which no script
 * element reports to page-load.js; the rest of the page works without it, so only this
 * section says so. Chromium 156 fetches a failed import's URL again on the next import()
 * (the HTML spec keeps no fetch failure in the module map): trying again is importing
 * again, no reload. */
async function renderMeetings() {
  let meetings;
  try {
    meetings = await import("./meetings.js");
  } catch {
    const notice = didNotLoad("The meetings could not load. Check your connection, then try again.",
      () => renderMeetings().catch(partDidNotLoad));
    $("meetings").replaceChildren(el("h2", {}, "Meetings"), notice);
    return;
  }
  await meetings.mountMeetings($("meetings"), { call, pair: state.pair, me: state.me });
}

/** A notice that a part of the page could not load, for the caller to place. Its `retry` runs
 * on a click on Try again, or by itself when the browser is back online: after a dropped or
 * changed network, that is when a fetch can work. The notice is its own alert, announced when
 * placed: where it goes is no live region (#meetings would announce every change). */
function didNotLoad(words, retry) {
  const tried = new AbortController();
  const notice = el("div", { class: "notice", role: "alert" }, el("p", {}, words),
    el("button", { type: "button", class: "secondary", onclick: again }, "Try again"));
  function again() {
    tried.abort(); // one try for a click and an `online` together
    // Replaced since (another pair chosen, another error said): what replaced it stands.
    if (!notice.isConnected) return;
    notice.remove(); // a failed try places a new one, announced afresh
    retry();
  }
  window.addEventListener("online", again, { signal: tried.signal });
  return notice;
}

async function open(token) {
  state.token = token;
  const mine = await call("GET", "/api/v1/me/pairs");
  state.me = mine.identity;
  if (!mine.pairs.length) throw new Error("You are not in a mentoring pair yet.");
  // A token is for one room and a room is one pair's, ever (server/pairs/store.py): the
  // pair is the token's, and the join link (to /join, with this token) opens its room. Each
  // pair's page is opened from its own link (or /home).
  state.pair = mine.pairs[0];
  $("token-form").hidden = true;
  $("pair").hidden = false;
  await showPair();
}

function start() {
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    try {
      await open(token);
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch (error) {
      $("token-error").textContent = error.message;
    }
  });
  $("agenda-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("agenda-form"), "Could not add to the agenda", async () => {
      await call("POST", `${base()}/agenda`, { text: $("agenda-text").value });
      $("agenda-text").value = "";
      await renderAgenda();
    });
  });
  $("goal-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("goal-form"), "Could not add the goal", async () => {
      await call("POST", `${base()}/goals`, { title: $("goal-title").value, due_date: $("goal-due").value || null });
      $("goal-title").value = "";
      $("goal-due").value = "";
      await renderGoals();
    });
  });
  const exports = $("export-json").parentElement;
  $("export-json").addEventListener("click", () => act(exports, "Could not download the log", () => download(state.token, `${base()}/export?format=json`, "our-log.json")));
  $("export-csv").addEventListener("click", () => act(exports, "Could not download the log", () => download(state.token, `${base()}/export?format=csv`, "our-log.csv")));
  const token = takeToken();
  if (!token) {
    $("token-form").hidden = false;
    return;
  }
  open(token).catch((error) => {
    $("token-error").textContent = error.message;
    $("token-form").hidden = false;
  });
}

start();

/** "video→audio" style steps in words. */
function plainStep(step) {
  return String(step).split(/→|->/).map((mode) => MODE_WORDS[mode.trim()] || plainReason(mode.trim())).join(" → ");
}
