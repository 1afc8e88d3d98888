// Meetings in the pair view: the pair's meetings on my own clock, times both are free,
// proposing, accepting, cancelling, and my private calendar feed. The pair page mounts it.

import { act, bdi, el } from "./sessionlog.js";

/** Render the meetings of `pair` into `container`; `call(method, path, body)` is the
 * page's authenticated API call and `me` the signed-in member's identity. */
export async function mountMeetings(container, { call, pair, me }) {
  const base = `/api/v1/pairs/${encodeURIComponent(pair.id)}/meetings`;
  let heading; // of what is shown: a failed refresh is said after it
  /** A click's handler: `work`, then the meetings again; what failed is said after `place`
   * (the buttons or form used). Nothing is said, and no space kept, while nothing failed. */
  const acting = (place, doing, work) => async () => {
    if (await act(place, doing, work)) await act(heading, "Could not show the meetings again", render);
  };

  function meetingItem(m) {
    const shown = m.status === "booked" ? m.occurrences : m.options;
    const mineLocal = (o) => o.local[me] || o.start_utc;
    const item = el("li", { class: "meeting", "data-status": m.status },
      bdi(m.title), ` · ${m.status}`,
      m.every_weeks ? ` · every ${m.every_weeks} week(s) until ${m.until}` : null);
    if (m.status === "booked") {
      item.append(el("div", { class: "muted" }, `${mineLocal(shown[0])}, ${m.minutes} min`));
    }
    const actions = el("div", { class: "log-inline" });
    if (m.status === "proposed" && m.proposed_by !== me) {
      m.options.forEach((o, i) => actions.append(el("button", { type: "button",
        onclick: acting(actions, "Could not accept that time",
          () => call("POST", `${base}/${m.id}/accept`, { option: i })) }, `Accept ${mineLocal(o)}`)));
    } else if (m.status === "proposed") {
      item.append(el("div", { class: "muted" }, "Waiting for your partner: ", m.options.map(mineLocal).join("; ")));
    }
    if (m.status !== "cancelled") {
      actions.append(el("button", { type: "button",
        onclick: acting(actions, "Could not cancel the meeting", () => call("POST", `${base}/${m.id}/cancel`)) }, "Cancel"));
    }
    item.append(actions);
    return item;
  }

  async function propose(title, startIso, minutes) {
    await call("POST", base, { title, times: [startIso], minutes,
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone });
  }

  async function render() {
    const [{ meetings }, { suggestions }] = await Promise.all([
      call("GET", base), call("GET", `${base}/suggestions`),
    ]);
    const title = el("input", { id: "meeting-title", maxlength: 200, value: "Mentoring session", required: true });
    const when = el("input", { id: "meeting-when", type: "datetime-local", required: true });
    const form = el("form", { class: "log-inline", onsubmit: (event) => {
      event.preventDefault();
      acting(form, "Could not propose the meeting", () => propose(title.value, new Date(when.value).toISOString(), 60))();
    } },
      el("label", { for: "meeting-title", class: "visually-hidden" }, "Meeting title"), title,
      el("label", { for: "meeting-when" }, "When"), when,
      el("button", { type: "submit" }, "Propose"));
    const feed = el("p", {}, el("button", { type: "button", onclick: () => act(feed, "Could not make your calendar feed link", async () => {
      const { url } = await call("POST", "/api/v1/me/calendar");
      feed.replaceChildren(el("label", { for: "calendar-url" }, "Your calendar feed (keep it private): "),
        el("input", { id: "calendar-url", readonly: true, value: url, size: 40 }));
    }) }, "Calendar feed link"));
    const both = el("p", { class: "muted" }, "Both free: ");
    both.append(...suggestions.map((s) => el("button", { type: "button",
      onclick: acting(both, "Could not propose that time", () => propose("Mentoring session", s.start_utc, 60)) }, s.mentee_local)));
    heading = el("h2", {}, "Meetings");
    container.replaceChildren(
      heading,
      el("ul", { class: "log-list", id: "meeting-list" }, ...meetings.map(meetingItem)),
      // (replaceChildren writes a null as the text "null": nothing is left out by a spread)
      ...(suggestions.length ? [both] : []),
      form, feed,
    );
  }

  await render();
}
