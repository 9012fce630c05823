/* Compose page, progressive enhancement (the form works without it):
   - "Mise en forme": an optional small editor (bold, italic, underline, lists, quote, link)
     whose HTML is posted in the hidden field body_html; the textarea keeps a text copy (drafts,
     the text alternative — the server makes its own from the sanitised HTML anyway);
   - attachments: drop files on the form, list of chosen files with their size and a remove
     button, a warning above the size limit, a camera button on phones. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosave]");
  if (!form) { return; }

  /* --- Clean HTML: only what the server's allow-list keeps -------------------------------- */
  var INLINE = { STRONG: "strong", B: "strong", EM: "em", I: "em", U: "u" };
  var KEPT = { UL: "ul", OL: "ol", LI: "li", BLOCKQUOTE: "blockquote" };
  var BLOCKS = ["P", "DIV", "H1", "H2", "H3", "H4", "H5", "H6", "SECTION", "ARTICLE", "HEADER",
                "FOOTER", "ADDRESS", "PRE", "TR", "DT", "DD", "FIGURE", "FIGCAPTION", "CENTER",
                "TABLE", "TBODY", "THEAD", "TFOOT", "DL", "HR"];
  var DROPPED = ["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT", "IFRAME", "OBJECT", "EMBED", "SVG",
                 "MATH", "IMG", "VIDEO", "AUDIO", "CANVAS", "TEXTAREA", "SELECT", "BUTTON",
                 "INPUT", "HEAD", "TITLE", "META", "LINK"];

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function safeHref(value) {
    var href = (value || "").trim();
    return /^(https?:\/\/[^\s]+|mailto:[^\s]+)$/i.test(href) ? href : "";
  }
  function isBlock(node) {
    return node.nodeType === 1 && (BLOCKS.indexOf(node.tagName) >= 0 || KEPT[node.tagName]);
  }
  function hasBlockChild(node) {
    return Array.prototype.some.call(node.childNodes, isBlock);
  }
  function serialize(node, wrapLoose) {
    var out = "";
    var loose = "";  // inline content waiting to be wrapped in a paragraph
    function flush() {
      if (loose.replace(/<br>/g, "").trim()) { out += "<p>" + loose + "</p>"; }
      loose = "";
    }
    Array.prototype.forEach.call(node.childNodes, function (child) {
      var html = "";
      var block = false;
      if (child.nodeType === 3) {
        // The browser types non-breaking spaces to keep spaces visible while editing.
        html = escapeHtml(child.nodeValue.replace(/\u00a0/g, " "));
      } else if (child.nodeType === 1 && DROPPED.indexOf(child.tagName) < 0) {
        var tag = child.tagName;
        if (tag === "BR") {
          html = "<br>";
        } else if (INLINE[tag] || (tag === "SPAN" && parseInt(child.style.fontWeight, 10) >= 600)) {
          var name = INLINE[tag] || "strong";
          var inner = serialize(child, false);
          html = inner ? "<" + name + ">" + inner + "</" + name + ">" : "";
        } else if (tag === "A") {
          var href = safeHref(child.getAttribute("href"));
          html = href ? '<a href="' + escapeHtml(href) + '">' + serialize(child, false) + "</a>"
                      : serialize(child, false);
        } else if (KEPT[tag]) {
          block = true;
          html = "<" + KEPT[tag] + ">" + serialize(child, tag === "BLOCKQUOTE") + "</" + KEPT[tag] + ">";
        } else if (BLOCKS.indexOf(tag) >= 0) {
          block = true;
          if (tag === "HR") { html = ""; }
          else if (hasBlockChild(child)) { html = serialize(child, true); }
          else { html = "<p>" + (serialize(child, false) || "<br>") + "</p>"; }
        } else {
          html = serialize(child, false);  // span, font, … : their content only
        }
      }
      if (block) { flush(); out += html; }
      else if (wrapLoose) { loose += html; }
      else { out += html; }
    });
    flush();
    return out;
  }
  function cleanHtml(html) {
    // DOMParser documents are inert: nothing in them loads or runs.
    var doc = new DOMParser().parseFromString("<body>" + html + "</body>", "text/html");
    return serialize(doc.body, true);
  }

  /* Text copy, like the server's text alternative: "- " items, "1. " numbered, quotes "> ". */
  function toText(root) {
    var lines = [];
    var line = "";
    var depth = 0;
    function breakLine() { lines.push([line, depth]); line = ""; }
    function walk(node, listTag) {
      Array.prototype.forEach.call(node.childNodes, function (child, index) {
        if (child.nodeType === 3) { line += child.nodeValue.replace(/\s+/g, " "); return; }
        if (child.nodeType !== 1 || DROPPED.indexOf(child.tagName) >= 0) { return; }
        var tag = child.tagName;
        if (tag === "BR") { breakLine(); return; }
        if (tag === "LI") {
          if (line.trim()) { breakLine(); }
          var number = Array.prototype.filter.call(node.children, function (c) { return c.tagName === "LI"; }).indexOf(child) + 1;
          line = listTag === "OL" ? number + ". " : "- ";
          walk(child, null);
          breakLine();
          return;
        }
        if (tag === "A") {
          var href = safeHref(child.getAttribute("href"));
          var label = child.textContent.replace(/\s+/g, " ").trim();
          walk(child, null);
          var target = /^mailto:[^?]*$/i.test(href) ? href.slice(7) : href;
          if (href && label !== href && label !== target) { line += " <" + target + ">"; }
          return;
        }
        if (isBlock(child)) {
          if (line.trim()) { breakLine(); }
          if (lines.length && lines[lines.length - 1][0] !== "" && tag !== "UL" && tag !== "OL") { lines.push(["", depth]); }
          if (tag === "BLOCKQUOTE") { depth += 1; }
          walk(child, tag === "UL" || tag === "OL" ? tag : null);
          if (line.trim()) { breakLine(); }
          if (tag === "BLOCKQUOTE") { depth -= 1; }
          return;
        }
        walk(child, null);
      });
    }
    walk(root, null);
    breakLine();
    return lines.map(function (item) {
      var text = item[0].trim();
      var marks = new Array(item[1] + 1).join(">");
      return marks ? (text ? marks + " " + text : marks) : text;
    }).join("\n").replace(/\n{3,}/g, "\n\n").replace(/^\n+|\s+$/g, "");
  }

  /* The textarea's text as HTML: paragraphs, line breaks, "> " lines as quotes. */
  function textToHtml(text) {
    var lines = text.replace(/\r\n?/g, "\n").split("\n");
    var out = "";
    var index = 0;
    if (lines.length && lines[0] === "") { out += "<p><br></p>"; }
    while (index < lines.length) {
      if (/^>/.test(lines[index])) {
        var quoted = [];
        while (index < lines.length && /^>/.test(lines[index])) {
          quoted.push(lines[index].replace(/^> ?/, ""));
          index += 1;
        }
        out += "<blockquote>" + textToHtml(quoted.join("\n")) + "</blockquote>";
        continue;
      }
      var paragraph = [];
      while (index < lines.length && lines[index].trim() && !/^>/.test(lines[index])) {
        paragraph.push(escapeHtml(lines[index]));
        index += 1;
      }
      if (paragraph.length) { out += "<p>" + paragraph.join("<br>") + "</p>"; }
      while (index < lines.length && !lines[index].trim()) { index += 1; }
    }
    return out;
  }

  /* --- The editor ------------------------------------------------------------------------- */
  (function () {
    var field = form.querySelector(".body-field");
    var editor = document.getElementById("body-editor");
    if (!field || !editor || typeof document.execCommand !== "function") { return; }
    var textarea = field.querySelector("textarea");
    var hidden = form.querySelector("input[name=body_html]");
    var toggle = field.querySelector(".format-toggle");
    var toolbar = field.querySelector(".editor-toolbar");
    var buttons = toolbar.querySelectorAll("button[data-command]");
    var PREF = "mssweb.compose.formatting";
    var on = false;

    function pref(value) {
      try {
        if (value === undefined) { return window.localStorage.getItem(PREF) === "1"; }
        window.localStorage.setItem(PREF, value ? "1" : "0");
      } catch (error) { /* private browsing: no preference kept */ }
      return false;
    }
    function sync() {
      if (!on) { hidden.value = ""; return; }
      hidden.value = serialize(editor, true);
      textarea.value = toText(editor);
    }
    function show(state) {
      on = state;
      editor.hidden = !state;
      toolbar.hidden = !state;
      textarea.hidden = state;
      toggle.setAttribute("aria-pressed", state ? "true" : "false");
      field.classList.toggle("formatting", state);
    }
    function start(html) {
      editor.innerHTML = cleanHtml(html) || "<p><br></p>";
      show(true);
      sync();
    }
    function initialHtml() {
      var quote = field.dataset.quoteHtml;
      if (quote && textarea.value === textarea.defaultValue) {
        var head = escapeHtml(field.dataset.quoteHead || "").trim().split("\n").join("<br>");
        return "<p><br></p>" + (head ? "<p>" + head + "</p>" : "") +
               "<blockquote>" + cleanHtml(quote) + "</blockquote>";
      }
      return textToHtml(textarea.value);
    }

    document.execCommand("defaultParagraphSeparator", false, "p");
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      if (on) {
        sync();
        show(false);
        hidden.value = "";
        pref(false);
        textarea.focus();
      } else {
        start(initialHtml());
        pref(true);
        editor.focus();
      }
      form.dispatchEvent(new Event("input", { bubbles: true }));  // for the draft autosave
    });

    function inside(node) {
      while (node && node !== editor) {
        if (node.nodeType === 1 && node.tagName === "BLOCKQUOTE") { return true; }
        node = node.parentNode;
      }
      return false;
    }
    function updateState() {
      var selection = document.getSelection();
      if (!on || !selection || !editor.contains(selection.anchorNode)) { return; }
      Array.prototype.forEach.call(buttons, function (button) {
        var command = button.dataset.command;
        if (!button.hasAttribute("aria-pressed")) { return; }
        var state = command === "blockquote" ? inside(selection.anchorNode)
                                              : document.queryCommandState(command);
        button.setAttribute("aria-pressed", state ? "true" : "false");
      });
    }
    function run(command) {
      editor.focus();
      if (command === "blockquote") {
        var selection = document.getSelection();
        document.execCommand("formatBlock", false, inside(selection.anchorNode) ? "p" : "blockquote");
      } else if (command === "createLink") {
        var url = window.prompt(field.dataset.linkPrompt, "https://");
        if (url === null) { return; }
        var href = safeHref(url);
        if (!href) { window.alert(field.dataset.linkInvalid); return; }
        if (document.getSelection().isCollapsed) {
          document.execCommand("insertHTML", false, '<a href="' + escapeHtml(href) + '">' + escapeHtml(href) + "</a>");
        } else {
          document.execCommand("createLink", false, href);
        }
      } else if (command === "removeFormat") {
        document.execCommand("removeFormat");
        document.execCommand("unlink");
      } else {
        document.execCommand(command);
      }
      sync();
      updateState();
      form.dispatchEvent(new Event("input", { bubbles: true }));
    }

    Array.prototype.forEach.call(buttons, function (button) {
      // mousedown would move the focus (and the selection) out of the editor.
      button.addEventListener("mousedown", function (event) { event.preventDefault(); });
      button.addEventListener("click", function () { run(button.dataset.command); });
    });
    editor.addEventListener("keydown", function (event) {
      if (!(event.ctrlKey || event.metaKey) || event.altKey) { return; }
      var command = { b: "bold", i: "italic", u: "underline", k: "createLink" }[event.key.toLowerCase()];
      if (command) { event.preventDefault(); run(command); }
    });
    editor.addEventListener("input", function () { sync(); updateState(); });
    document.addEventListener("selectionchange", updateState);
    // Pasted or dropped content comes in as plain text (the server sanitises anyway).
    editor.addEventListener("paste", function (event) {
      event.preventDefault();
      var text = (event.clipboardData || window.clipboardData).getData("text/plain");
      document.execCommand("insertText", false, text);
    });
    editor.addEventListener("drop", function (event) {
      var data = event.dataTransfer;
      if (!data || (data.files && data.files.length)) { return; }  // files: see attachments
      event.preventDefault();
      document.execCommand("insertText", false, data.getData("text/plain"));
    });
    form.addEventListener("submit", sync, true);

    var restored = field.dataset.editorHtml;
    if (restored) { start(restored); }  // a draft written with formatting, or a refused send
    else if (pref()) { start(initialHtml()); }
  })();

  /* --- Attachments ------------------------------------------------------------------------ */
  (function () {
    var field = form.querySelector(".attach-field");
    if (!field) { return; }
    var input = field.querySelector("input[type=file]:not(.photo-input)");
    var photo = field.querySelector(".photo-input");
    var list = field.querySelector(".file-list");
    var warning = field.querySelector(".file-warning");
    var zone = field.querySelector(".dropzone");
    var store;
    try { store = new DataTransfer(); } catch (error) { return; }  // old browser: plain input
    var max = parseInt(field.dataset.maxSize, 10) || 0;
    var locale = document.documentElement.lang || "fr";

    function size(bytes) {
      var format = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
      if (bytes < 1000) { return format.format(bytes) + " o"; }
      if (bytes < 1000000) { return format.format(bytes / 1000) + " ko"; }
      return format.format(bytes / 1000000) + " Mo";
    }
    function render() {
      input.files = store.files;
      list.textContent = "";
      var total = 0;
      Array.prototype.forEach.call(store.files, function (file, index) {
        total += file.size;
        var item = document.createElement("li");
        var name = document.createElement("span");
        name.className = "file-name";
        name.textContent = file.name;
        var weight = document.createElement("span");
        weight.className = "small";
        weight.textContent = size(file.size);
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "button button-small button-secondary";
        remove.textContent = "×";
        remove.setAttribute("aria-label", field.dataset.remove.replace("%s", file.name));
        remove.addEventListener("click", function () {
          var kept = new DataTransfer();
          Array.prototype.forEach.call(store.files, function (other, position) {
            if (position !== index) { kept.items.add(other); }
          });
          store = kept;
          render();
          input.focus();
        });
        item.appendChild(name);
        item.appendChild(weight);
        item.appendChild(remove);
        list.appendChild(item);
      });
      list.hidden = store.files.length === 0;
      var tooBig = max && total > max;
      warning.hidden = !tooBig;
      warning.textContent = tooBig ? field.dataset.tooBig : "";
    }
    function add(files) {
      Array.prototype.forEach.call(files, function (file) {
        var known = Array.prototype.some.call(store.files, function (other) {
          return other.name === file.name && other.size === file.size && other.lastModified === file.lastModified;
        });
        if (!known) { store.items.add(file); }
      });
      render();
    }

    // The picker replaces the input's files: keep the earlier choices too.
    input.addEventListener("change", function () { add(input.files); });
    if (photo) {
      photo.addEventListener("change", function () {
        add(photo.files);
        photo.value = "";  // now in the main input: not posted twice
      });
    }
    if (window.matchMedia("(hover: hover) and (pointer: fine)").matches) {
      zone.hidden = false;
      zone.addEventListener("click", function () { input.click(); });
    }
    function hasFiles(event) {
      return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
    }
    var depth = 0;
    form.addEventListener("dragenter", function (event) {
      if (!hasFiles(event)) { return; }
      depth += 1;
      form.classList.add("dragging");
    });
    form.addEventListener("dragleave", function (event) {
      if (!hasFiles(event)) { return; }
      depth = Math.max(0, depth - 1);
      if (!depth) { form.classList.remove("dragging"); }
    });
    form.addEventListener("dragover", function (event) {
      if (!hasFiles(event)) { return; }
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    form.addEventListener("drop", function (event) {
      if (!event.dataTransfer || !event.dataTransfer.files.length) { return; }
      event.preventDefault();
      depth = 0;
      form.classList.remove("dragging");
      add(event.dataTransfer.files);
    });
    if (input.files.length) { add(input.files); }  // chosen before the script ran
  })();
})();
