// A page whose code failed to load reloads itself, as a person would. When the network
// changes while a page loads (Wi-Fi to cellular), Chromium aborts the requests in flight
// (net::ERR_NETWORK_CHANGED); one failed import fails the page's whole module graph, and
// its module script then fires `error`: nothing of the page runs, and it would stay on
// "Connecting…" for good. A reload recovers it: the page's scripts run again in their
// order, whatever a browser keeps of a failed fetch (Chromium 156 fetches a failed module
// again on a later import(), which web/pair.js's lazily loaded section relies on).
//
// A classic script, first in <head> with `defer`: deferred and module scripts run in
// document order, so it listens before any of the page's own scripts can fail. A page's
// fragment (the join page's #token=…) is kept by the reload, and no page's code has run
// to take it yet.
"use strict";

(() => {
  const TRIES = 3; // reloads in a row, then a Reload button instead of a loop
  const FIRST_WAIT_MS = 1000; // then 2 s, 4 s: the network settles, the person reads
  const KEY = `pairwise.page-load:${location.pathname}`;
  let failed = false;
  let loaded = false;

  /** Reloads already made for this page in this tab; storage refused: as many as allowed,
   * since without it reloads could not be counted and would never stop. */
  function reloadsSoFar() {
    try {
      return Number(sessionStorage.getItem(KEY)) || 0;
    } catch {
      return TRIES;
    }
  }

  function count(reloads) {
    try {
      if (reloads) sessionStorage.setItem(KEY, String(reloads));
      else sessionStorage.removeItem(KEY);
    } catch {
      // reloadsSoFar() gives up without storage
    }
  }

  /** Say it on the page: role="alert" is announced when it is inserted with its text. */
  function say(text, ...actions) {
    const notice = document.createElement("div");
    notice.className = "notice page-load";
    notice.setAttribute("role", "alert");
    const line = document.createElement("p");
    line.textContent = text;
    notice.append(line, ...actions);
    const main = document.querySelector("main") || document.body;
    main.prepend(notice);
  }

  function reloadAfresh() {
    count(0);
    location.reload();
  }

  function giveWay() {
    const reloads = reloadsSoFar();
    if (reloads < TRIES) {
      count(reloads + 1);
      say("The connection changed while the page loaded — reloading…");
      setTimeout(() => location.reload(), FIRST_WAIT_MS * 2 ** reloads);
      return;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Reload";
    button.addEventListener("click", reloadAfresh);
    say("This page could not load. Check your connection, then reload.", button);
    window.addEventListener("online", reloadAfresh, { once: true });
  }

  // A script's failed fetch fires `error` at its element, which does not bubble: heard in
  // the capture phase. Errors thrown while a script runs go to window, not through here.
  document.addEventListener("error", (event) => {
    if (loaded || failed || !(event.target instanceof HTMLScriptElement)) return;
    failed = true; // one notice and one reload however many scripts failed
    giveWay();
  }, true);

  // Every deferred and module script has run or failed by now. Later failures are left
  // alone: the page is running, and a reload would lose what the person is doing.
  document.addEventListener("DOMContentLoaded", () => {
    loaded = true;
    if (!failed) count(0);
  });
})();
