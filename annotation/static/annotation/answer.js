// The answer page: one question at a time, Enter sends, Shift+Enter starts a new line, "The card doesn't say"
// answers without text, Back returns to an earlier answer until the whole set is submitted.
// Keys are handled only inside the answer form, and only Enter in an answer box: the browser keeps arrows,
// Space, PageDown and every other key.
(() => {
  "use strict";
  const form = document.getElementById("answer-form");
  if (!form) return;
  const questions = Array.from(form.querySelectorAll("fieldset.question"));
  const review = document.getElementById("review");
  const reviewList = document.getElementById("review-list");
  const step = document.getElementById("step");
  const submitButton = document.getElementById("submit-button");
  const n = questions.length;
  const perQuestion = questions.map(() => 0);
  let current = 0;

  // Active time: counted only while the page is visible and focused, and per question while it is shown.
  let active = 0, since = null;
  const tick = () => {
    const now = performance.now();
    if (since !== null) {
      active += (now - since) / 1000;
      if (current < n) perQuestion[current] += (now - since) / 1000;
    }
    since = (document.visibilityState === "visible" && document.hasFocus()) ? now : null;
  };
  tick();
  ["focus", "blur"].forEach((e) => window.addEventListener(e, tick));
  document.addEventListener("visibilitychange", tick);
  setInterval(tick, 1000);

  const box = (i) => questions[i].querySelector("textarea");
  const field = (i) => questions[i].querySelector(".doesnt-say-field");
  const hint = (i, text) => { questions[i].querySelector(".hint").textContent = text; };
  const saysNothing = (i) => field(i).value === "1";
  const answered = (i) => saysNothing(i) || box(i).value.trim() !== "";

  const setDoesntSay = (i, on) => {
    field(i).value = on ? "1" : "";
    questions[i].classList.toggle("doesnt-say-chosen", on);
    questions[i].querySelector("[data-action=doesnt-say]").setAttribute("aria-pressed", on ? "true" : "false");
    if (on) box(i).value = "";
  };

  const fillReview = () => {
    reviewList.replaceChildren();
    questions.forEach((q, i) => {
      const li = document.createElement("li");
      const question = document.createElement("p");
      question.className = "review-question";
      question.textContent = q.querySelector(".question-text").textContent;
      const reply = document.createElement("p");
      reply.className = "review-answer";
      if (saysNothing(i)) {
        const em = document.createElement("em");
        em.textContent = "The card doesn't say";
        reply.append(em);
      } else {
        reply.textContent = box(i).value.trim();
      }
      const change = document.createElement("button");
      change.type = "button";
      change.dataset.goto = String(i);
      change.textContent = `Change answer ${i + 1}`;
      li.append(question, reply, change);
      reviewList.append(li);
    });
  };

  const show = (i) => {
    tick();
    current = Math.max(0, Math.min(i, n));
    questions.forEach((q, k) => { q.hidden = k !== current; });
    review.hidden = current !== n;
    if (current === n) {
      fillReview();
      step.textContent = `All ${n} questions answered — check and submit`;
      submitButton.focus();
    } else {
      step.textContent = "";  // the question's own legend says "Question i of n"
      box(current).focus();
    }
  };

  const next = () => {
    if (!answered(current)) {
      hint(current, "Write an answer, or press “The card doesn't say”.");
      box(current).focus();
      return;
    }
    hint(current, "");
    show(current + 1);
  };

  form.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || !form.contains(button)) return;
    if (button.dataset.goto !== undefined) { show(Number(button.dataset.goto)); return; }
    const action = button.dataset.action;
    if (action === "next") next();
    else if (action === "back") show(current - 1);
    else if (action === "doesnt-say") { setDoesntSay(current, true); hint(current, ""); show(current + 1); }
  });

  form.addEventListener("input", (event) => {
    const q = event.target.closest("fieldset.question");
    if (!q || event.target.tagName !== "TEXTAREA") return;
    const i = questions.indexOf(q);
    if (event.target.value.trim() !== "" && saysNothing(i)) setDoesntSay(i, false);
    hint(i, "");
  });

  form.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (!(event.target instanceof HTMLTextAreaElement) || !event.target.closest("fieldset.question")) return;
    event.preventDefault();
    next();
  });

  form.addEventListener("submit", (event) => {
    const missing = questions.findIndex((_, i) => !answered(i));
    if (missing !== -1) {
      event.preventDefault();
      show(missing);
      hint(missing, "Write an answer, or press “The card doesn't say”.");
      return;
    }
    if (form.dataset.preview) {
      event.preventDefault();
      step.textContent = "Preview: nothing is stored.";
      return;
    }
    tick();
    document.getElementById("active-seconds").value = active.toFixed(1);
    document.getElementById("question-seconds").value = JSON.stringify(perQuestion.map((s) => Number(s.toFixed(1))));
    submitButton.disabled = true;  // a second submit would be harmless (idempotent), but noisy
  });

  questions.forEach((_, i) => { if (saysNothing(i)) setDoesntSay(i, true); });
  // After a refused submit, resume at the first question the server (or the annotator) left open.
  const withError = questions.findIndex((q) => q.querySelector(".hint").textContent.trim() !== "");
  const open = questions.findIndex((_, i) => !answered(i));
  show(withError !== -1 ? withError : (open !== -1 ? open : 0));
})();
