/* Keyboard shortcuts on desktop (the pages work without them):
   j / k  next / previous message in a list     x  select it     o or Enter  open it
   c  write      r  reply      f  forward     e  archive     #  delete     u  back to the list */
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("li.message-row"));
  var index = -1;

  function focusRow(i) {
    if (!rows.length) { return; }
    index = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (row) { row.classList.remove("is-focused"); });
    rows[index].classList.add("is-focused");
    rows[index].querySelector("a").focus();
  }
  function click(selector) {
    var element = document.querySelector(selector);
    if (element) { element.click(); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) { return; }
    switch (event.key) {
      case "j": focusRow(index + 1); break;
      case "k": focusRow(index - 1); break;
      case "x":
        if (index >= 0) { var box = rows[index].querySelector("input[type=checkbox]"); box.checked = !box.checked; }
        break;
      case "o": if (index >= 0) { rows[index].querySelector("a").click(); } break;
      case "c": click("a.compose-button"); break;
      case "r": click("a[data-shortcut=reply]"); break;
      case "f": click("a[data-shortcut=forward]"); break;
      case "e": click("button[data-shortcut=archive]"); break;
      case "#": click("button[data-shortcut=delete]"); break;
      case "u": click("a[data-shortcut=back]"); break;
      default: return;
    }
    event.preventDefault();
  });
})();
