// "Call me": a member types their number and the phone gateway rings them into the room
// (POST /api/v1/rooms/{room}/phone/call-me with their join token). Not wired into the room
// page yet: the room page mounts it with mountCallMe(form, {token, room}).

const MESSAGES = {
  422: "Please give the number in international form, like +49 30 1234567.",
  403: "This number cannot be called from here.",
  404: "Calling out is not available on this server.",
  429: "You asked for several calls already. Please wait a while.",
};

/** Ask the gateway to call `number`; resolves to {ok, text} for the person to read. */
export async function callMe(token, room, number) {
  const response = await fetch(`/api/v1/rooms/${encodeURIComponent(room)}/phone/call-me`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ number }),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 202) return { ok: true, text: `Calling ${data.number} now…` };
  const code = data.error && data.error.code;
  const text = code === "room_closed" ? "This meeting room is closed." : MESSAGES[response.status];
  return { ok: false, text: text || "The call could not be placed. Please try again." };
}

/**
 * Wire a form holding <input type="tel" name="number"> and an element with
 * [data-callme-status] (role="status") to callMe.
 */
export function mountCallMe(form, { token, room }) {
  const status = form.querySelector("[data-callme-status]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    status.textContent = "Asking the phone line to call you…";
    const { text } = await callMe(token, room, form.elements.number.value.trim());
    status.textContent = text;
    if (button) button.disabled = false;
  });
}
