// Why media changed, in words a person understands. The server's reasons are codes
// (docs/protocol-media.md) meant for the session log; the page never shows them raw.

const WORDS = {
  no_video_rtp: "your video stopped reaching the server",
  no_audio_rtp: "your audio stopped reaching the server",
  no_rtp: "your audio and video stopped reaching the server",
  high_loss: "your network is losing too much data",
  ice_timeout: "the connection could not be set up in time",
  ice_failed: "the connection failed",
  ice_closed: "the connection closed",
  dtls_failed: "the connection failed",
  connection_closed: "the connection closed",
  consent_expired: "the network stopped answering",
  renegotiation_timeout: "the connection stopped answering",
  renegotiation_failed: "the connection could not be updated",
  media_recovered: "your network recovered",
  media_closed: "the connection closed",
};

// A camera or microphone that stopped (unplugged, or its permission taken back) and came
// back: not the network, so nothing reconnects for them.
const DEVICE = {
  camera_unavailable: "the camera stopped or was blocked",
  microphone_unavailable: "the microphone stopped or was blocked",
  camera_and_microphone_unavailable: "the camera and microphone stopped or were blocked",
  camera_available: "the camera is available again",
  microphone_available: "the microphone is available again",
};

/** Reasons the network caused (the ladder climbs back by itself), not a person's choice. */
const NETWORK = new Set(Object.keys(WORDS).filter((code) => code !== "media_recovered"));

/** Plain words for a reason code; text that is already words is kept, unknown codes are generic. */
export function plainReason(reason) {
  if (!reason) return "the connection changed";
  if (WORDS[reason]) return WORDS[reason];
  if (DEVICE[reason]) return DEVICE[reason];
  return /^[a-z0-9]+(_[a-z0-9]+)+$/.test(reason) ? "the connection changed" : reason;
}

export function isNetworkReason(reason) {
  return NETWORK.has(reason);
}
