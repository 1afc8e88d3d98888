// After leaving a pair's meeting: ask for a 1–5 rating, an optional comment, and whether the
// pair is a good fit. Answers go to the session log (POST .../sessions/{id}/feedback) with the
// join token; rooms that belong to no pair ask nothing.

const $ = (id) => document.getElementById(id);

async function api(token, method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

/** The pair that owns `room` and its latest session, or null. */
async function latestSession(token, room) {
  const mine = await api(token, "GET", "/api/v1/me/pairs");
  const pair = mine.status === 200 ? mine.data.pairs.find((p) => p.room === room) : null;
  if (!pair) return null;
  const listed = await api(token, "GET", `/api/v1/pairs/${encodeURIComponent(pair.id)}/sessions`);
  const sessions = listed.status === 200 ? listed.data.sessions : [];
  if (!sessions.length) return null;
  const latest = sessions.reduce((a, b) => (b.started_at > a.started_at ? b : a));
  return { pair, session: latest };
}

/** Show the feedback form in the "ended" view if this room is a pair's room. */
export async function offerFeedback(token, room) {
  const form = $("feedback");
  form.hidden = true;
  let found;
  try {
    found = await latestSession(token, room);
  } catch {
    return; // no network: the pair page asks again later
  }
  if (!found) return;
  const status = $("feedback-status");
  status.textContent = "";
  form.reset();
  form.hidden = false;
  form.onsubmit = async (event) => {
    event.preventDefault();
    const rating = Number(new FormData(form).get("rating"));
    if (!rating) {
      status.textContent = "Choose a rating from 1 to 5.";
      return;
    }
    const comment = $("feedback-comment").value.trim();
    const body = { rating, comment: comment || null, good_fit: !$("feedback-not-fit").checked };
    const path = `/api/v1/pairs/${encodeURIComponent(found.pair.id)}/sessions/${found.session.id}/feedback`;
    const answer = await api(token, "POST", path, body);
    if (answer.status === 201) {
      form.hidden = true;
      $("feedback-thanks").hidden = false;
      $("feedback-thanks").focus();
    } else if (answer.status === 409) {
      status.textContent = "You already gave feedback on this meeting. Thank you!";
    } else {
      status.textContent = answer.data?.error?.message || "Could not send your feedback; try again.";
    }
  };
}
