// "Try as the user": while the system generates, show a spinner with the seconds waited and whether a worker has
// picked the step up; reload when the step is done. No keyboard handling here (answer.js does the answering).
(() => {
  "use strict";
  const box = document.getElementById("try-waiting");
  if (!box) return;
  const elapsed = document.getElementById("try-elapsed");
  const worker = document.getElementById("try-worker");
  const stage = box.dataset.stage;
  let seconds = Number(box.dataset.elapsed || 0);
  let base = performance.now() - seconds * 1000;
  setInterval(() => { elapsed.textContent = ((performance.now() - base) / 1000).toFixed(1); }, 100);

  const poll = async () => {
    try {
      const response = await fetch(box.dataset.stateUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const state = await response.json();
        if (state.stage !== stage) { window.location.reload(); return; }
        worker.textContent = state.worker_started ? "Generating" : "Waiting for a generation worker";
        seconds = state.elapsed_s;
        base = performance.now() - seconds * 1000;
      }
    } catch (error) {
      worker.textContent = "Lost contact with the server; retrying";
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 500);
})();
