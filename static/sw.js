/* mssweb service worker. Served by /sw.js, which prepends VERSION, OFFLINE_URL, STATIC_PREFIX
   and SHELL (the app shell's URLs).

   What it keeps: the app shell (style sheet, scripts, icons) and the offline page — nothing
   personal. Every page and every request outside the static files goes to the network and is
   never stored: messages, attachments, the directory, settings. When a page cannot be reached,
   the offline page is shown instead. It also shows push notifications (no health data in them:
   see apps/notifications/services.py) and opens the message when one is tapped. */
"use strict";

const CACHE = "mssweb-shell-" + VERSION;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) =>
      // The offline page is fetched without cookies, so it can hold nothing of the user.
      Promise.all(SHELL.map((url) =>
        fetch(new Request(url, { credentials: "omit", cache: "reload" })).then((response) => {
          if (response.ok) return cache.put(url, response);
          throw new Error("shell " + url + " " + response.status);
        })
      ))
    ).then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((name) => name.startsWith("mssweb-") && name !== CACHE)
          .map((name) => caches.delete(name))
      ))
      .then(() => self.clients.claim())
  );
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith(STATIC_PREFIX);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return; // forms and uploads: straight to the network
  const url = new URL(request.url);
  if (request.mode === "navigate") {
    // Pages: network only, never stored; the offline page when the network fails.
    event.respondWith(
      fetch(request).catch(() => caches.match(OFFLINE_URL, { cacheName: CACHE }))
    );
    return;
  }
  if (isStatic(url)) {
    // Static files: in production their names change with their content, so the cached copy
    // comes first; in development the network comes first and the cache is the fallback.
    const store = (cache, response) => {
      if (response.ok && response.type === "basic") cache.put(request, response.clone());
      return response;
    };
    event.respondWith(
      caches.open(CACHE).then((cache) =>
        STATIC_CACHE_FIRST
          ? cache.match(request).then((hit) => hit || fetch(request).then((r) => store(cache, r)))
          : fetch(request).then((r) => store(cache, r)).catch(() => cache.match(request))
      )
    );
  }
  // Anything else is left to the browser: network only.
});

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = {};
  }
  const title = data.title || "mssweb";
  const options = {
    body: data.body || "",
    icon: SHELL.find((url) => url.endsWith("icon-192.png")),
    badge: SHELL.find((url) => url.endsWith("badge-96.png")),
    tag: data.tag || "mssweb",
    renotify: true,
    requireInteraction: Boolean(data.urgent),
    data: { url: data.url || "/" },
  };
  const badge = typeof data.unread === "number" && self.navigator.setAppBadge
    ? self.navigator.setAppBadge(data.unread).catch(() => {})
    : Promise.resolve();
  event.waitUntil(Promise.all([self.registration.showNotification(title, options), badge]));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data && event.notification.data.url || "/", self.location.origin);
  if (target.origin !== self.location.origin) return;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const client of windows) {
        if ("navigate" in client && client.url.startsWith(self.location.origin)) {
          return client.focus().then(() => client.navigate(target.href));
        }
      }
      return self.clients.openWindow(target.href);
    })
  );
});
