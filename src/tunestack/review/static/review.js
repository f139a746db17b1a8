// tunestack review: keyboard shortcuts. The pages work without this file; it only turns a key press into a click
// on the button or link that carries the same data-key (a / e / r on candidates, 1-5 on answers).
(function () {
  "use strict";
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    var key = event.key.toLowerCase();
    var control = document.querySelector('[data-key="' + key + '"]');
    if (!control || control.disabled) {
      return;
    }
    event.preventDefault();
    control.classList.add("pressed");
    control.click();
  });
  // A decision form is sent once: a second click (or key) while the page is leaving does nothing.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.sent) {
      event.preventDefault();
      return;
    }
    form.dataset.sent = "1";
  });
})();
