/* Compose page, progressive enhancement (the page works without it):
   - drafts saved automatically while typing and when the page is left;
   - recipient autocompletion from contacts and the national directory. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosave]");
  if (!form) { return; }
  var status = document.getElementById("draft-status");
  var draftInput = form.querySelector("input[name=draft]");
  var dirty = false;
  var saving = false;

  function payload() {
    var data = new FormData(form);
    data.delete("files");
    data.delete("save_draft");
    data.delete("discard");
    return data;
  }

  function save() {
    if (!dirty || saving) { return; }
    saving = true;
    dirty = false;
    fetch(form.dataset.autosave, { method: "POST", body: payload(), credentials: "same-origin",
                                   headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response); })
      .then(function (json) {
        draftInput.value = json.draft;
        if (status) { status.textContent = status.dataset.saved.replace("%s", json.saved_at); }
      })
      .catch(function () { dirty = true; })
      .finally(function () { saving = false; });
  }

  form.addEventListener("input", function (event) {
    if (event.target.type !== "file") { dirty = true; }
  });
  form.addEventListener("submit", function () { dirty = false; });
  window.setInterval(save, 4000);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden" && dirty) {
      dirty = false;
      navigator.sendBeacon(form.dataset.autosave, payload());
    }
  });

  /* Autocompletion: the last address being typed in To, Cc or Bcc. */
  Array.prototype.forEach.call(form.querySelectorAll("input[data-autocomplete]"), function (input) {
    var list = document.createElement("ul");
    var timer = null;
    list.className = "suggestions";
    list.id = input.id + "-suggestions";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("aria-autocomplete", "list");
    input.parentNode.appendChild(list);

    function current() {
      var parts = input.value.split(/[,;]/);
      return parts[parts.length - 1].trim();
    }
    function choose(item) {
      var parts = input.value.split(/[,;]/);
      parts[parts.length - 1] = " " + (item.name ? item.name.replace(/[<>,;"]/g, "") + " <" + item.address + ">" : item.address);
      input.value = parts.join(",").replace(/^\s+/, "") + ", ";
      list.hidden = true;
      dirty = true;
      input.focus();
    }
    function show(results) {
      list.textContent = "";
      results.forEach(function (item) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.tabIndex = -1;
        var name = document.createElement("strong");
        name.textContent = item.name || item.address;
        var detail = document.createElement("span");
        detail.className = "small";
        detail.textContent = " " + item.address + (item.profession ? " · " + item.profession : "") + (item.town ? " · " + item.town : "");
        li.appendChild(name);
        li.appendChild(detail);
        li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(item); });
        li.addEventListener("keydown", function (event) {
          if (event.key === "Enter") { event.preventDefault(); choose(item); }
          if (event.key === "ArrowDown" && li.nextSibling) { li.nextSibling.focus(); }
          if (event.key === "ArrowUp") { (li.previousSibling || input).focus(); }
          if (event.key === "Escape") { list.hidden = true; input.focus(); }
        });
        list.appendChild(li);
      });
      list.hidden = results.length === 0;
    }
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      var query = current();
      if (query.length < 2) { list.hidden = true; return; }
      timer = window.setTimeout(function () {
        fetch(input.dataset.autocomplete + "?q=" + encodeURIComponent(query), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : { results: [] }; })
          .then(function (json) { if (current() === query) { show(json.results || []); } });
      }, 200);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && !list.hidden && list.firstChild) { event.preventDefault(); list.firstChild.focus(); }
      if (event.key === "Escape") { list.hidden = true; }
    });
    input.addEventListener("blur", function () { window.setTimeout(function () {
      if (!list.contains(document.activeElement)) { list.hidden = true; }
    }, 150); });
  });
})();

/* The Patient block (Mon espace santé): without this script a visible fieldset; with it,
   folded behind "Écrire à un patient" unless it has something in it. A folded block is
   disabled, so nothing of it is sent. The address being built is shown as the INS is typed. */
(function () {
  "use strict";
  var block = document.getElementById("patient-block");
  var toggle = document.querySelector(".patient-toggle");
  if (!block || !toggle) { return; }
  var insInput = block.querySelector("input[name=patient_ins]");
  var preview = block.querySelector(".patient-address");

  var receipt = document.querySelector("input[name=read_receipt]");

  function setOpen(open) {
    block.hidden = !open;
    block.disabled = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open && receipt) { receipt.checked = true; }  // always asked of a patient
  }
  function showAddress() {
    if (!insInput || !preview) { return; }
    var ins = insInput.value.replace(/[\s.\-]+/g, "").toUpperCase();
    preview.hidden = ins.length !== 15;
    preview.textContent = ins.length === 15 ? preview.dataset.label.replace("%s", ins + "@" + preview.dataset.domain) : "";
  }
  toggle.hidden = false;
  setOpen(block.dataset.open === "1");
  showAddress();
  toggle.addEventListener("click", function () {
    var open = block.hidden;
    setOpen(open);
    if (open && insInput) { insInput.focus(); }
  });
  if (insInput) { insInput.addEventListener("input", showAddress); }
})();

/* Recipients outside the MSSanté trust space: said before sending, as the addresses are typed
   (the server asks again on submit if this script did not run or was too slow). */
(function () {
  "use strict";
  var block = document.querySelector(".external-block[data-routes]");
  if (!block) { return; }
  var form = block.closest("form");
  var list = block.querySelector(".external-list");
  var confirmed = form.querySelector("input[name=external_confirmed]");
  var fields = ["to", "cc", "bcc"].map(function (name) { return form.querySelector("[name=" + name + "]"); })
    .filter(Boolean);
  var timer = null;
  var asked = "";

  function addresses() {
    return fields.map(function (input) { return input.value; }).join(",");
  }
  function show(items) {
    list.textContent = "";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = item.address;
      if (item.openpgp) {
        li.appendChild(document.createTextNode(" — " + block.dataset.openpgp + " "));
        var code = document.createElement("code");
        code.textContent = item.fingerprint;
        li.appendChild(code);
      }
      list.appendChild(li);
    });
    block.hidden = items.length === 0;
    confirmed.value = items.map(function (item) { return item.address; }).join(",");
  }
  function check() {
    var text = addresses();
    if (text === asked) { return; }
    asked = text;
    if (text.indexOf("@") < 0) { show([]); return; }
    fetch(block.dataset.routes + "?addresses=" + encodeURIComponent(text), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response); })
      .then(function (json) { if (addresses() === text) { show(json.external || []); } })
      .catch(function () { asked = ""; });
  }
  fields.forEach(function (input) {
    input.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(check, 600); });
    input.addEventListener("change", check);
  });
  check();
})();
