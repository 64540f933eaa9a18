// The inspector's only script: keep a run's timeline live by polling a small fragment.
// The server renders (and escapes) every row; this only appends what it sends.
(function () {
  "use strict";
  const timeline = document.getElementById("timeline");
  if (!timeline || timeline.dataset.live !== "1") return;
  const FINAL = ["completed", "stopped"];
  async function poll() {
    try {
      const response = await fetch(timeline.dataset.poll + "?after=" + encodeURIComponent(timeline.dataset.last), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const data = await response.json();
        if (data.rows) timeline.insertAdjacentHTML("beforeend", data.rows);
        timeline.dataset.last = String(data.last);
        const summary = document.getElementById("run-summary");
        if (summary && data.summary) summary.innerHTML = data.summary;
        if (FINAL.includes(data.status)) {
          const note = document.getElementById("live-note");
          if (note) note.textContent = "The run has ended.";
          return;
        }
      }
    } catch (error) {
      // the server restarted or the network hiccupped: try again
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
