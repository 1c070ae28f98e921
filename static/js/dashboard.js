// smsdash: the one bit of behaviour htmx attributes don't cover: opening and closing a
// recipient's timeline row (the open timeline then updates with the page's poll). A row that
// left the status filter is kept only while its timeline is open, so closing it removes the row.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-timeline]");
  if (!button) return;
  var box = document.getElementById(button.getAttribute("aria-controls"));
  var row = box.closest("tr");
  if (button.getAttribute("aria-expanded") === "true") {
    var kept = button.closest("tbody[data-kept]");
    if (kept) {
      kept.remove();
      return;
    }
    button.setAttribute("aria-expanded", "false");
    row.hidden = true;
    box.innerHTML = "";
  } else {
    button.setAttribute("aria-expanded", "true");
    row.hidden = false;
    htmx.ajax("GET", button.dataset.timeline, { target: box, swap: "innerHTML" });
  }
});
