// The judging page (templates/annotation/judge.html). Progressive enhancement: without this file the form
// is plain radio buttons and a submit button that post normally.
//
// Keyboard rules (docs/judging.md; WCAG 2.1.4): there is no page-wide key handler. Keys 1 / 2 / 3 choose
// only while focus is inside a row of the decision area, which nothing focuses on load. The browser's own
// keys (arrows, Space, Page Down) are never taken: they scroll. Enter submits only once every row has an
// explicit choice. Submitting retries a 503 or a network error with backoff (submits are idempotent), so a
// choice is never lost to a briefly busy server.
(() => {
  "use strict";
  const form = document.getElementById("judge-form");
  if (!form) return;
  const decision = form.querySelector("[data-decision]");
  const rows = Array.from(form.querySelectorAll("[data-row]"));
  const rationale = document.getElementById("rationale");
  const submitButton = document.getElementById("submit-button");
  const activeField = document.getElementById("active-seconds");
  const choiceStatus = document.getElementById("choice-status");
  const saveStatus = document.getElementById("save-status");
  const rationaleHint = document.getElementById("hint-rationale");
  const minRationale = Number(form.dataset.rationaleMin || 0);
  const KEYS = { "1": "1", "2": "2", "3": "tie" };
  const LABELS = { "1": "Response 1", "2": "Response 2", "tie": "Tie" };

  // Active time: counted only while the page is visible and focused.
  let active = 0;
  let since = null;
  const tick = () => {
    const now = performance.now();
    if (since !== null) active += (now - since) / 1000;
    since = document.visibilityState === "visible" && document.hasFocus() ? now : null;
  };
  tick();
  ["focus", "blur"].forEach((name) => window.addEventListener(name, tick));
  document.addEventListener("visibilitychange", tick);
  setInterval(tick, 1000);

  // Rows take focus (Tab stops on each row); the radios leave the tab order, because arrow keys on a
  // focused radio would change the choice instead of scrolling. They stay clickable and readable.
  rows.forEach((row) => {
    row.tabIndex = 0;
    row.setAttribute("aria-keyshortcuts", "1 2 3");
    row.querySelectorAll("input[type=radio]").forEach((input) => { input.tabIndex = -1; });
  });

  const chosen = (row) => {
    const input = row.querySelector("input:checked");
    return input ? input.value : "";
  };
  const hint = (row, text) => {
    const el = row.querySelector(".hint");
    if (el) el.textContent = text;
  };
  const rationaleShort = () => rationale.value.trim().length < minRationale;

  const showChange = (row, before, after) => {
    const name = row.dataset.name;
    choiceStatus.textContent = before
      ? `${name}: changed from ${LABELS[before]} to ${LABELS[after]}.`
      : `${name}: ${LABELS[after]}.`;
    const span = row.querySelector(`input[value="${after}"] + span`);
    if (span) {
      span.classList.remove("changed");
      void span.offsetWidth; // restart the flash when the same option is chosen twice in a row
      span.classList.add("changed");
    }
  };

  const choose = (row, value) => {
    const input = row.querySelector(`input[value="${value}"]`);
    if (!input) return;
    const before = chosen(row);
    input.checked = true;
    hint(row, "");
    if (before === value) {
      choiceStatus.textContent = `${row.dataset.name}: ${LABELS[value]} (unchanged).`;
      return;
    }
    showChange(row, before, value);
    // A first answer moves on to the next unanswered row (a row: Space and arrows there still scroll).
    if (!before) {
      const next = rows.find((other) => !chosen(other));
      if (next) next.focus();
    }
  };

  decision.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const row = event.target.closest("[data-row]");
    if (!row) return;
    if (KEYS[event.key]) {
      choose(row, KEYS[event.key]);
    } else if (event.key === "Enter") {
      event.preventDefault(); // Enter on a focused radio would submit natively, unchecked
      trySubmit();
    }
  });

  // A click checks a radio and focuses it; hand focus to its row so that arrows scroll afterwards.
  decision.addEventListener("change", (event) => {
    const row = event.target.closest("[data-row]");
    if (!row) return;
    hint(row, "");
    row.focus({ preventScroll: true });
  });

  rationale.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      trySubmit();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    trySubmit();
  });

  function trySubmit() {
    const missing = rows.find((row) => !chosen(row));
    if (missing) {
      missing.focus();
      hint(missing, "Choose 1, 2 or 3 first.");
      return;
    }
    if (rationaleShort()) {
      rationale.focus();
      rationaleHint.textContent =
        minRationale > 1 ? `Please write at least ${minRationale} characters.` : "Please say briefly why.";
      return;
    }
    if (form.dataset.preview) {
      rationaleHint.textContent = "Preview: nothing is stored.";
      return;
    }
    save();
  }

  // Saving: a 503 (database busy or restarting) or a lost connection is retried with exponential backoff
  // and jitter, honouring Retry-After, until it goes through. Any other answer is the server's to show:
  // success follows the redirect to the next comparison; a refusal or invalid input is posted again
  // natively so the browser shows that page (a repeat is harmless: submits are idempotent).
  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
  const backoffMs = (attempt, response) => {
    const hinted = Math.min(30, Number(response && response.headers.get("Retry-After")) || 0);
    const backoff = Math.min(15, 0.5 * 2 ** attempt) * (0.5 + Math.random());
    return 1000 * Math.max(hinted, backoff);
  };
  let saving = false;
  // Back to this page from the browser's cache after it was saved: load it afresh (the server moves on to
  // the next comparison) instead of showing a page stuck at "saving…".
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && saving) window.location.reload();
  });

  async function save() {
    if (saving) return;
    saving = true;
    tick();
    activeField.value = active.toFixed(1);
    const body = new FormData(form);
    submitButton.disabled = true;
    form.setAttribute("aria-busy", "true");
    for (let attempt = 0; ; attempt += 1) {
      saveStatus.textContent = attempt === 0 ? "saving…" : `saving… (the server is busy: try ${attempt + 1}; your choice is kept)`;
      let response = null;
      try {
        response = await fetch(form.action, { method: "POST", body, credentials: "same-origin" });
      } catch (error) {
        response = null; // network error: retry
      }
      if (response && response.status !== 503) {
        if (response.ok && response.redirected) {
          window.location.assign(response.url);
        } else {
          form.submit(); // a native post: the browser shows the server's answer
        }
        return;
      }
      await sleep(backoffMs(attempt, response));
    }
  }
})();
