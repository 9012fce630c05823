/* Installable web app: registers the service worker, shows the "add to home screen" hint on
   phones (dismissible, remembered), and puts the unread count on the app icon where the browser
   supports it. Without JavaScript none of this is needed. */
(function () {
  "use strict";

  if ("serviceWorker" in navigator) {
    window.addEventListener("load", function () {
      navigator.serviceWorker.register(
        // The offline page is kept in the language of the page that installed the worker.
        "/sw.js?lang=" + encodeURIComponent(document.documentElement.lang || ""), { scope: "/" }
      ).catch(function () {});
    });
  }

  // App badge: the server puts the inbox's unread count in <meta name="mssweb-unread">.
  var unreadMeta = document.querySelector('meta[name="mssweb-unread"]');
  if (unreadMeta && "setAppBadge" in navigator) {
    var unread = parseInt(unreadMeta.content, 10) || 0;
    (unread > 0 ? navigator.setAppBadge(unread) : navigator.clearAppBadge()).catch(function () {});
  }

  var hint = document.getElementById("install-hint");
  if (!hint) return;
  var KEY = "mssweb-install-hint-dismissed";
  var standalone = window.matchMedia("(display-mode: standalone)").matches || navigator.standalone === true;
  var phone = window.matchMedia("(max-width: 64rem) and (pointer: coarse)").matches;
  var dismissed = false;
  try { dismissed = localStorage.getItem(KEY) === "1"; } catch (error) { dismissed = false; }
  if (standalone || !phone || dismissed) return;

  var accept = document.getElementById("install-accept");
  var deferred = null;

  function show(platform) {
    hint.querySelectorAll(".install-text").forEach(function (p) {
      p.hidden = p.getAttribute("data-platform") !== platform;
    });
    hint.hidden = false;
  }

  document.getElementById("install-dismiss").addEventListener("click", function () {
    hint.hidden = true;
    try { localStorage.setItem(KEY, "1"); } catch (error) { /* private mode */ }
  });

  // Chrome, Edge, Samsung Internet: the browser's own install prompt, on our button.
  window.addEventListener("beforeinstallprompt", function (event) {
    event.preventDefault();
    deferred = event;
    accept.hidden = false;
    show("prompt");
  });
  accept.addEventListener("click", function () {
    if (!deferred) return;
    deferred.prompt();
    deferred.userChoice.finally(function () { hint.hidden = true; deferred = null; });
  });
  window.addEventListener("appinstalled", function () { hint.hidden = true; });

  // iPhone and iPad (Safari has no install prompt): explain the Share menu.
  var ios = /iPhone|iPad|iPod/.test(navigator.userAgent) ||
    (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  if (ios) show("ios");
})();
