// Entries of a session's timeline, and the phone gateway's refused PINs, in words. The
// server keeps codes (phone_pin_rejected, wrong_pin via dtmf); a page never shows them raw.

const PIN_REASONS = {
  wrong_pin: "wrong PIN",
  no_pin: "no PIN keyed in time",
  source_locked: "too many wrong PINs from its address, not checked",
  over_ceiling: "too many wrong PINs from all callers, not checked",
  removed: "the PIN of someone removed from the room",
  room_closed: "the room is closed",
};
const PIN_VIA = { dtmf: "keyed", request_uri: "in the dialled number", header: "sent by the phone system", call: "a new call, refused before any PIN" };

/** Why a PIN was refused, in words ("wrong PIN"); an unknown code reads "refused". */
export function pinReason(reason) {
  return PIN_REASONS[reason] || "refused";
}

/** How the PIN came ("keyed"). */
export function pinVia(via) {
  return PIN_VIA[via] || "another way";
}

/** A timeline entry in words, or null for a kind no page shows yet. A refused PIN's
 * detail is "<reason> via <via> from <address> (<masked number>)" (phone/session_log.py);
 * the address is left out: the pair's log is for the pair, the console shows addresses. */
export function timelineWords(entry) {
  if (entry.kind !== "phone_pin_rejected") return null;
  const [, reason, via, caller] = /^(\S+) via (\S+) from \S+ \((.*)\)$/.exec(entry.detail || "") || [];
  const who = caller ? `, caller ${caller}` : "";
  return `A phone caller was refused: ${pinReason(reason)} (${pinVia(via)}${who})`;
}
