// Generation-job page (templates/training/generation_job.html): refreshes the numbers every two seconds
// while the job is queued or running. Without JavaScript the page is complete; reload it.
(() => {
  "use strict";
  const root = document.getElementById("job");
  if (!root) return;
  const url = root.dataset.progressUrl;
  const tick = () => {
    fetch(url, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((progress) => {
        root.querySelectorAll("[data-k]").forEach((el) => {
          const key = el.dataset.k;
          if (key === "bar") {
            el.max = progress.total;
            el.value = progress.done;
            return;
          }
          el.textContent = progress[key] === null ? "–" : progress[key];
        });
        if (progress.status === "queued" || progress.status === "running") setTimeout(tick, 2000);
      })
      .catch(() => { setTimeout(tick, 5000); });
  };
  setTimeout(tick, 2000);
})();
