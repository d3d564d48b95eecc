// Keeps the status page current by polling its JSON twin until the submission reaches a final state.
// Only what changed is rewritten, so the live region (#announce) speaks once per change of state.
(function () {
  "use strict";
  var box = document.getElementById("status");
  if (!box) return;
  var url = box.dataset.url;

  function byId(id) { return document.getElementById(id); }
  function setText(id, text) {
    var element = byId(id);
    var value = text === null || text === undefined ? "" : String(text);
    if (element.textContent !== value) element.textContent = value;
  }
  function show(id, visible) { byId(id).hidden = !visible; }

  function renderBars(bars) {
    var list = byId("bars");
    if (!bars.length || list.dataset.scored === "true") return;
    list.innerHTML = "";
    bars.forEach(function (bar) {
      var row = document.createElement("li");
      row.className = "bar" + (bar.top ? " top" : "");
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = bar.digit;
      var track = document.createElement("span");
      track.className = "track";
      var fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = bar.width + "%";
      track.appendChild(fill);
      var score = document.createElement("span");
      score.className = "score";
      score.textContent = bar.score;
      if (bar.top) {
        var note = document.createElement("span");
        note.className = "visually-hidden";
        note.textContent = " (highest)";
        score.appendChild(note);
      }
      row.appendChild(label);
      row.appendChild(track);
      row.appendChild(score);
      list.appendChild(row);
    });
    list.dataset.scored = "true";
  }

  function render(data) {
    var changed = box.dataset.state !== data.state;
    box.dataset.state = data.state;
    if (changed) {
      var headline = byId("headline");
      headline.className = "headline state-" + data.state;
      setText("headline", data.headline);
      setText("reason", data.reason);
      show("reason", Boolean(data.reason));
      var steps = byId("steps");
      steps.innerHTML = "";
      data.steps.forEach(function (step) {
        var li = document.createElement("li");
        li.textContent = step.label;
        if (step.done) li.className = "done";
        steps.appendChild(li);
      });
    }
    show("rejection", Boolean(data.rejected));
    setText("batch-wait", data.batch_wait);
    show("batch-wait", Boolean(data.batch_wait));
    setText("pending-note", data.pending_note);
    show("pending", Boolean(data.pending));
    setText("paid-by", data.paid_by);
    show("paid-by", Boolean(data.paid_by));
    setText("predicted", data.predicted);
    show("read", data.predicted !== "" && data.predicted !== null && data.predicted !== undefined);
    setText("tip", data.tip);
    setText("cost", data.cost);
    renderBars(data.bars);
    show("payment", Boolean(data.paid));
    if (data.paid) {
      setText("amount", data.amount + " sat");
      setText("txid", data.txid);
      var explorer = byId("explorer");
      if (data.explorer_url) explorer.href = data.explorer_url;
      explorer.hidden = !data.explorer_url;
      show("no-explorer", !data.explorer_url);
      setText("block", data.block);
    }
    return data;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(render)
      .then(function (data) {
        // After payment, keep polling until the block arrives.
        // A pending image waits days for a later model: its link brings the contributor back instead.
        if (data.state !== "confirmed" && data.state !== "rejected" && data.state !== "pending") {
          setTimeout(poll, 1500);
        }
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  var waiting = ["confirmed", "rejected", "pending"].indexOf(box.dataset.state) < 0;
  if (waiting) setTimeout(poll, 1000);
})();
