/* Settings page: subscribe this browser to Web Push with the server's VAPID public key and send
   the subscription (endpoint and keys only) to the server, with the page's CSRF token. */
(function () {
  "use strict";
  var box = document.getElementById("push-device");
  if (!box) return;
  var status = document.getElementById("push-status");
  var button = document.getElementById("push-enable");
  var form = document.getElementById("push-form");

  function say(key) {
    var text = document.querySelector('#push-messages').content.querySelector('[data-key="' + key + '"]');
    if (text) status.textContent = text.textContent;
  }

  function urlBase64ToUint8Array(base64) {
    var padded = (base64 + "===".slice((base64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function toBase64Url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function send(subscription) {
    var data = new FormData();
    data.append("csrfmiddlewaretoken", form.querySelector('[name="csrfmiddlewaretoken"]').value);
    data.append("endpoint", subscription.endpoint);
    data.append("p256dh", toBase64Url(subscription.getKey("p256dh")));
    data.append("auth", toBase64Url(subscription.getKey("auth")));
    return fetch(box.getAttribute("data-subscribe-url"), {
      method: "POST", body: data, credentials: "same-origin",
    }).then(function (response) {
      if (!response.ok) throw new Error("refused");
      window.location.reload();
    });
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say("unsupported");
    return;
  }
  if (Notification.permission === "denied") {
    say("denied");
    return;
  }
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(function () {
    return navigator.serviceWorker.ready;
  }).then(function (registration) {
    return registration.pushManager.getSubscription().then(function (existing) {
      say(existing ? "active" : "ready");
      button.hidden = false;
      button.addEventListener("click", function () {
        say("working");
        button.disabled = true;
        Notification.requestPermission().then(function (permission) {
          if (permission !== "granted") { say("denied"); throw new Error("denied"); }
          return registration.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: urlBase64ToUint8Array(box.getAttribute("data-vapid-key")),
          });
        }).then(send).catch(function (error) {
          if (error && error.message !== "denied") say("failed");
          button.disabled = false;
        });
      });
    });
  }).catch(function () { say("unsupported"); });
})();
