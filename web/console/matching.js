// Matching: run it (live progress), review the draft (score, explanation, shared hours,
// slots; the unmatched with reasons), keep or swap pairs and run again, then publish.

import { bdi, el } from "../sessionlog.js";
import { call, enc } from "./api.js";
import { invitationCard } from "./pairs.js";
import { $, fail, plural, say } from "./ui.js";

const POLL_MS = 300;
const state = { run: null, drafts: [], fixed: new Set(), swapped: false, published: false };
const key = (d) => `${d.mentee}\u0000${d.mentor}`;
const mentee = (d) => d.mentee_name || d.mentee;
const mentor = (d) => d.mentor_name || d.mentor;
/** A person by name, their identity beside it in small print (two people may share a name). */
const person = (name, identity) => el("span", {}, bdi(name), name === identity ? null : el("span", { class: "muted console-identity" }, " (", bdi(identity), ")"));
/** Why an unmatched mentee's best mentor was not theirs ("Best option: Mara (mara), score 80:
 * at capacity (1/1)."), from the run's results; nothing when no mentor passed the filters. */
const bestOption = (best) => best
  ? el("span", {}, " Best option: ", person(best.name || best.mentor, best.mentor), `, score ${best.score}: ${best.why_not}.`)
  : null;

async function follow(runId) {
  $("run-state").hidden = false;
  $("review").hidden = true;
  for (;;) {
    const run = await call("GET", `/api/v1/matching/runs/${enc(runId)}`);
    $("run-progress").value = run.progress;
    $("run-label").textContent = `Matching… ${Math.round(run.progress * 100)}%`;
    if (run.status === "failed") throw new Error(`The run failed: ${run.error}`);
    if (run.status === "done") break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  $("run-state").hidden = true;
  await review(runId);
}

async function start(fixedPairs) {
  fail(null);
  const started = await call("POST", "/api/v1/matching/runs", { mode: $("run-mode").value, fixed_pairs: fixedPairs });
  history.replaceState(null, "", `#matching/${started.id}`);
  say("Matching started.");
  await follow(started.id);
}

function slotText(slot) {
  return `${slot.mentee_local} (mentee) / ${slot.mentor_local} (mentor), ${slot.minutes} min`;
}

function draftCard(d, index) {
  const fixed = state.fixed.has(key(d));
  const others = state.drafts.filter((o) => o !== d);
  const swapWith = el("select", { id: `swap-${index}`, "aria-label": `Swap ${mentee(d)}'s mentor with` },
    ...others.map((o) => el("option", { value: state.drafts.indexOf(o) }, `${mentee(o)} (mentor ${mentor(o)})`)));
  const swap = el("button", { type: "button", "data-manager": true }, "Swap mentors");
  swap.addEventListener("click", () => {
    const other = state.drafts[Number(swapWith.value)];
    [d.mentor, other.mentor] = [other.mentor, d.mentor];
    [d.mentor_name, other.mentor_name] = [other.mentor_name, d.mentor_name];
    d.score = other.score = null;
    d.swapped = other.swapped = true;
    state.fixed.add(key(d));
    state.fixed.add(key(other));
    state.swapped = true;
    render();
    say(`Swapped: ${mentee(d)} with ${mentor(d)}, ${mentee(other)} with ${mentor(other)}. Run again to score them.`);
    $(`keep-${index}`)?.focus();
  });
  const keep = el("input", { type: "checkbox", id: `keep-${index}`, checked: fixed });
  keep.addEventListener("change", () => {
    if (keep.checked) state.fixed.add(key(d));
    else state.fixed.delete(key(d));
  });
  const ex = d.explanation || {};
  return el("li", { class: "log-card console-draft", "data-mentee": d.mentee },
    el("h3", {}, person(mentee(d), d.mentee), " ↔ ", person(mentor(d), d.mentor)),
    el("p", { class: "console-score" }, d.score === null ? "Swapped: run again to score" : `Score ${d.score}`),
    d.swapped ? null : el("p", { dir: "auto" }, ex.summary || ""),
    d.swapped ? null : el("p", { class: "muted" }, `Shared hours a week: ${ex.shared_hours ?? "–"}`),
    d.swapped || !(d.slots || []).length ? null : el("ul", { class: "console-slots", "aria-label": "Suggested slots" },
      ...d.slots.slice(0, 3).map((s) => el("li", {}, slotText(s)))),
    (ex.warnings || []).length ? el("p", { class: "log-badge" }, ex.warnings.join("; ")) : null,
    // A published pair is changed from its page under Pairs (end, rematch), no longer here.
    state.published ? null : el("div", { class: "log-inline" },
      el("label", { class: "log-check", for: `keep-${index}` }, keep, "Keep this pair when running again"),
      others.length ? swapWith : null, others.length ? swap : null));
}

function render() {
  $("drafts").replaceChildren(...state.drafts.map(draftCard));
  $("publish").disabled = state.swapped || !state.drafts.length;
  $("publish").hidden = $("rerun").hidden = state.published;
  $("publish").title = state.swapped ? "Run again first: the swapped pairs are not scored yet" : "";
  document.dispatchEvent(new Event("console:changed"));
}

async function review(runId) {
  const results = await call("GET", `/api/v1/matching/runs/${enc(runId)}/results`);
  state.run = results.run;
  state.drafts = results.pairs.map((p) => ({ ...p }));
  state.fixed = new Set(state.drafts.filter((d) => d.fixed).map(key));
  state.swapped = false;
  $("publish-invitations").replaceChildren();
  const s = results.run.summary || {};
  state.published = state.drafts.some((d) => d.status === "published");
  $("review-title").textContent = state.published ? "Published pairs" : "Draft pairs";
  $("review-summary").textContent = `${s.matched ?? state.drafts.length} matched, ${s.unmatched ?? results.unmatched.length} not matched; mean score ${s.mean_score ?? "–"}.`;
  $("unmatched").replaceChildren(...(results.unmatched.length
    ? results.unmatched.map((u) => el("li", {}, el("span", {}, person(mentee(u), u.mentee), ": ", el("span", { dir: "auto" }, u.explanation?.summary || u.reason), bestOption(u.explanation?.best_option))))
    : [el("li", { class: "muted" }, "Everyone was matched.")]));
  $("review").hidden = false;
  render();
  say(`Matching done: ${state.drafts.length} draft pairs to review.`);
}

export async function show({ arg }) {
  if (arg && arg !== state.run?.id) await follow(arg);
}

export function init() {
  $("run-form").addEventListener("submit", (event) => {
    event.preventDefault();
    start([]).catch(fail);
  });
  $("rerun").addEventListener("click", () => {
    const fixedPairs = state.drafts.filter((d) => state.fixed.has(key(d))).map((d) => ({ mentee: d.mentee, mentor: d.mentor }));
    start(fixedPairs).catch(fail);
  });
  $("publish").addEventListener("click", async () => {
    fail(null);
    const mail = document.body.dataset.mail === "on";
    if (!confirm(`Publish ${plural(state.drafts.length, "pair")}? Each gets a room${mail ? ", and every member is mailed a sign-in link" : ""}. Published pairs are changed from Pairs, not here.`)) return;
    try {
      const published = await call("POST", `/api/v1/matching/runs/${enc(state.run.id)}/publish`);
      const mailed = published.invitations.filter((i) => i.status === "mailed").length;
      say(`Published ${plural(published.pairs.length, "pair")}. They are under Pairs.` + (mailed ? ` ${plural(mailed, "person", "people")} ${mailed === 1 ? "was" : "were"} mailed a sign-in link.` : ""));
      state.published = true;
      $("review-title").textContent = "Published pairs";
      render();
      $("publish-invitations").replaceChildren(invitationCard(published.invitations, "published-link"));
    } catch (error) {
      fail(error);
    }
  });
}
