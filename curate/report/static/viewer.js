// The report's trajectory viewer: a question list (inline JSON), one script file per question
// loaded when picked (file:// pages cannot fetch()), samples with NLL and rank, and a trajectory
// with each supervised token shaded by its NLL under the student.
"use strict";

const curateViewer = (() => {
  const index = JSON.parse(document.getElementById("viewer-index").textContent);
  const cache = new Map();
  const waiting = new Map();
  const segmentNames = index.segments; // 0 none, 1 reason, 2 action, 3 final
  let current = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function fmt(value, digits) {
    return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
  }

  function shade(nll) {
    // from clear at the shown tokens' 5th NLL percentile to the darkest red at their 95th
    const [low, high] = index.scale;
    const alpha = Math.min(1, Math.max(0, (nll - low) / (high - low))) * 0.7;
    return `rgba(214, 39, 40, ${alpha.toFixed(3)})`;
  }

  function load(i) {
    if (cache.has(i)) return Promise.resolve(cache.get(i));
    return new Promise((resolve, reject) => {
      waiting.set(i, resolve);
      const script = el("script", { src: index.questions[i].file });
      script.onerror = () => reject(new Error(`cannot load ${index.questions[i].file}`));
      document.body.append(script);
    });
  }

  function loaded(i, payload) {
    cache.set(i, payload);
    const resolve = waiting.get(i);
    waiting.delete(i);
    if (resolve) resolve(payload);
  }

  function legend() {
    const box = document.getElementById("legend");
    box.replaceChildren();
    if (index.note) box.append(el("p", { class: "note", id: "viewer-note", text: index.note }));
    if (index.scale === null) return;
    const ramp = el("span", { class: "ramp" });
    const [low, high] = index.scale;
    for (let k = 0; k <= 10; k++) {
      ramp.append(el("span", { class: "tok", style: `background:${shade(low + (k / 10) * (high - low))}`, text: "\u00a0\u00a0" }));
    }
    box.append(
      el("span", { text: `token NLL (nats) ≤ ${fmt(low, 2)} ` }), ramp, el("span", { text: ` ≥ ${fmt(high, 2)}   ` }),
      el("span", { class: "tok seg-1", text: "reason" }), " ",
      el("span", { class: "tok seg-2", text: "action" }), " ",
      el("span", { class: "tok seg-3", text: "final" }), " ",
      el("span", { class: "tok unscored", text: "past the scoring limit" }),
    );
  }

  function flags(sample) {
    return ["parse_error", "max_steps", "exec_error"].filter((f) => sample[f]).join(", ");
  }

  function showQuestion(payload) {
    current = payload;
    const text = document.getElementById("question-text");
    text.replaceChildren(
      el("div", { class: "qid", text: `${payload.dataset} / ${payload.question_id}` }),
      el("div", { text: payload.question }),
      el("div", { class: "gold", text: `gold answer: ${payload.gold_answer ?? "-"}` }),
    );
    for (const [selection, choice] of Object.entries(payload.selections)) {
      if (choice.trajectory_id === null) {
        text.append(el("div", { class: "gold", text: `${selection}: nothing chosen (${choice.reason})` }));
      }
    }
    const body = document.querySelector("#samples tbody");
    body.replaceChildren();
    for (const s of payload.samples) {
      const row = el("tr", { "data-trajectory": s.trajectory_id },
        el("td", { class: "num", text: s.sample_idx }),
        el("td", { text: s.teacher_model ?? "-" }),
        el("td", { text: s.correct ? "yes" : "no" }),
        el("td", { text: s.clean ? "yes" : "no" }),
        el("td", { text: flags(s) }),
        el("td", { class: "num", text: s.assistant_turns }),
        el("td", { class: "num", text: s.tool_calls }),
        el("td", { class: "num", text: s.assistant_chars }),
        el("td", { class: "num", text: fmt(s.nll, 3) }),
        el("td", { class: "num", text: s.rank ?? "-" }),
        el("td", { text: s.chosen_by.join(", ") }),
      );
      if (s.chosen_by.length) row.classList.add("chosen");
      if (s.detail) {
        row.classList.add("openable");
        row.title = "open this trajectory";
        row.addEventListener("click", () => showTrajectory(s.trajectory_id));
      } else {
        row.title = "no token detail carried for this sample (--samples)";
      }
      body.append(row);
    }
    // open the lowest-NLL chosen sample that carries tokens (min_nll's choice when it is shown)
    const detailed = payload.samples.filter((s) => s.detail);
    const chosen = detailed.filter((s) => s.chosen_by.length).sort((a, b) => (a.rank ?? Infinity) - (b.rank ?? Infinity));
    const first = chosen[0] || detailed[0];
    if (first) showTrajectory(first.trajectory_id);
    else document.getElementById("trajectory").replaceChildren();
  }

  function tokens(turn) {
    const box = el("div", { class: "tokens" });
    const { p: pieces, n: nll, s: segments } = turn;
    for (let k = 0; k < pieces.length; k++) {
      const span = el("span", { class: `tok seg-${segments[k]}`, text: pieces[k] });
      if (nll[k] === null) {
        span.classList.add("unscored");
        span.title = "not scored (past the run's max length)";
      } else {
        span.style.background = shade(nll[k]);
        span.dataset.nll = nll[k];
        span.title = `NLL ${nll[k].toFixed(3)} · ${segmentNames[segments[k]]}`;
      }
      box.append(span);
    }
    return box;
  }

  function mean(values) {
    const scored = values.filter((v) => v !== null);
    return scored.length ? scored.reduce((a, b) => a + b, 0) / scored.length : null;
  }

  function showTrajectory(id) {
    for (const row of document.querySelectorAll("#samples tbody tr")) {
      row.classList.toggle("open", row.dataset.trajectory === id);
    }
    const sample = current.samples.find((s) => s.trajectory_id === id);
    const trajectory = current.trajectories[id];
    const box = document.getElementById("trajectory");
    const head = `sample ${sample.sample_idx} · ${sample.teacher_model ?? ""} · ${sample.correct ? "correct" : "wrong"}`
      + ` · NLL ${fmt(sample.nll, 3)} (rank ${sample.rank ?? "-"} of ${current.samples.filter((s) => s.rank).length})`
      + (sample.chosen_by.length ? ` · chosen by ${sample.chosen_by.join(", ")}` : "");
    box.replaceChildren(el("h3", { class: sample.chosen_by.length ? "chosen" : "", text: head }));
    for (const message of trajectory.messages) {
      const block = el("div", { class: `message ${message.kind}` });
      if (message.kind === "assistant") {
        const stored = trajectory.stored_turns[message.turn];
        let label = `assistant turn ${message.turn}`;
        if (message.tokens) {
          label += ` · ${message.tokens.p.length} supervised tokens · mean NLL ${fmt(mean(message.tokens.n), 4)}`;
          const unscored = message.tokens.n.filter((v) => v === null).length;
          if (unscored) label += ` · ${unscored} past the run's max length, not scored`;
        }
        label += ` · stored turn NLL ${fmt(stored, 4)}`;
        block.append(el("div", { class: "label", text: label }));
        block.append(message.tokens ? tokens(message.tokens) : el("div", { class: "text", text: message.text }));
      } else if (message.kind === "system") {
        block.append(el("details", {}, el("summary", { class: "label", text: "system prompt" }),
          el("div", { class: "text", text: message.text })));
      } else {
        block.append(el("div", { class: "label", text: message.kind }), el("div", { class: "text", text: message.text }));
      }
      box.append(block);
    }
  }

  function init() {
    const select = document.getElementById("question-select");
    const groups = new Map();
    for (const q of index.questions) {
      if (!groups.has(q.dataset)) {
        groups.set(q.dataset, el("optgroup", { label: q.dataset }));
        select.append(groups.get(q.dataset));
      }
      const label = `${q.question_id} · ${q.samples} samples · ${q.question}`;
      // the list is narrow: hovering an option shows the whole question
      groups.get(q.dataset).append(el("option", { value: q.i, text: label, title: label }));
    }
    // as tall as its entries (a listbox needs 2 rows), at most 12 rows
    select.size = Math.max(2, Math.min(12, index.questions.length + groups.size));
    select.addEventListener("change", () => load(Number(select.value)).then(showQuestion));
    legend();
    if (index.questions.length) {
      select.value = String(index.questions[0].i);
      load(index.questions[0].i).then(showQuestion);
    } else {
      document.getElementById("trajectory").append(el("p", { text: "No question with a scored trajectory in this run." }));
    }
  }

  document.addEventListener("DOMContentLoaded", init);
  return { loaded, load, showTrajectory };
})();
