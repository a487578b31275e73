// Settings pages, progressive enhancement only: "Copy" buttons appear when the clipboard API is there.
(function () {
  "use strict";
  if (!navigator.clipboard) {
    return;
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          button.textContent = "Copied";
          window.setTimeout(function () { button.textContent = label; }, 1600);
        },
        function () {
          button.textContent = "Select and copy by hand";
        }
      );
    });
  });
})();
