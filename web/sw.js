// The service worker: served from /sw.js so its scope is the whole site. It shows what
// the server pushes (a title, a short body, a URL of this site) and, on a click, focuses
// a window already on that page or opens one. It caches nothing: Pairwise is live video
// and chat, so an offline copy would only mislead.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** Only this site's pages are opened: a payload cannot send the person elsewhere. */
function sameOrigin(url) {
  try {
    const target = new URL(url, self.location.origin);
    return target.origin === self.location.origin ? target.href : `${self.location.origin}/me`;
  } catch {
    return `${self.location.origin}/me`;
  }
}

self.addEventListener("push", (event) => {
  let notice = {};
  try {
    notice = event.data ? event.data.json() : {};
  } catch {
    notice = { body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(
    self.registration.showNotification(notice.title || "Pairwise", {
      body: notice.body || "",
      icon: "/static/icon-192.png",
      badge: "/static/icon-192.png",
      data: { url: sameOrigin(notice.url || "/me") },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = event.notification.data?.url || `${self.location.origin}/me`;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((w) => w.url === url) || windows.find((w) => new URL(w.url).pathname === new URL(url).pathname);
      if (open) return open.focus();
      return self.clients.openWindow(url);
    })(),
  );
});
