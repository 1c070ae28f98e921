// smsdash: the behaviour htmx attributes don't cover. Kept in this file, with no inline handler
// in any template, so the Content-Security-Policy can allow scripts from this site only.

// A form with data-confirm asks first (delete, retry). The question is data, never script: it
// may hold a contact's name.
document.addEventListener("submit", function (event) {
  var form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

// Opening and closing a recipient's timeline row (the open timeline then updates with the
// page's poll). A row that left the status filter is kept only while its timeline is open, so
// closing it removes the row.
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

// "Send later" reads its time in an explicit zone: the browser's, filled in here unless the
// operator already chose one (the server leaves data-browser-zone off a re-shown form).
document.addEventListener("DOMContentLoaded", function () {
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll("input[data-browser-zone]").forEach(function (input) {
    if (zone) input.value = zone;
  });
});

// Scheduled sends count down live: each <time data-countdown> says how long until its
// datetime, in the words the server first wrote (schedules/when.py countdown).
function countdownText(seconds) {
  if (seconds <= 0) return "due now";
  if (seconds < 3600) {
    var m = Math.floor(seconds / 60);
    return "in " + (m ? m + " min " : "") + (seconds % 60) + " s";
  }
  var minutes = Math.ceil(seconds / 60);
  var days = Math.floor(minutes / 1440);
  var hours = Math.floor((minutes % 1440) / 60);
  var mins = minutes % 60;
  return "in " + [days ? days + " d" : "", hours ? hours + " h" : "", mins ? mins + " min" : ""]
    .filter(Boolean).join(" ");
}
setInterval(function () {
  document.querySelectorAll("time[data-countdown]").forEach(function (el) {
    var seconds = Math.floor((Date.parse(el.getAttribute("datetime")) - Date.now()) / 1000);
    var text = countdownText(seconds);
    if (el.textContent !== text) el.textContent = text;
  });
}, 1000);
