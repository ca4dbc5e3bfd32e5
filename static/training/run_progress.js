// Training-run admin page (templates/training/run_change_form.html). Progressive enhancement: the page is
// complete without JavaScript; this only refreshes the progress box while the run is live.
(() => {
  "use strict";
  const box = document.getElementById("pig-run-progress");
  if (!box || box.dataset.live !== "1") return;
  const timer = setInterval(() => {
    fetch(box.dataset.url, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((data) => {
        box.innerHTML = data.html; // server-rendered and escaped (training/views_runs.py)
        if (!data.live) {
          clearInterval(timer);
          window.location.reload();
        }
      })
      .catch(() => {});
  }, 3000);
})();
