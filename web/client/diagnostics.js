// Test and diagnostic switches, read from the page's query string, never on by default:
//   ?diag=force-relay   RTCPeerConnection with iceTransportPolicy "relay" (media fails
//                       unless a TURN server works: exercises the fallback ladder)
//   ?diag=debug-handle  window.pairwiseDebug, for tests to drop the socket and read state
const flags = new Set(new URLSearchParams(location.search).getAll("diag"));

export const diagnostics = Object.freeze({
  forceRelay: flags.has("force-relay"),
  debugHandle: flags.has("debug-handle"),
});
