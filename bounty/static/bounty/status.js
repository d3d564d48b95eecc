// Keeps the status page current by polling its JSON twin until the submission reaches a final state.
(function () {
  "use strict";
  var box = document.getElementById("status");
  if (!box) return;
  var url = box.dataset.url;

  function render(data) {
    box.dataset.state = data.state;
    var headline = document.getElementById("headline");
    headline.textContent = data.headline;
    headline.className = "headline state-" + data.state;
    var reason = document.getElementById("reason");
    reason.textContent = data.reason || "";
    reason.hidden = !data.reason;
    var steps = document.getElementById("steps");
    steps.innerHTML = "";
    data.steps.forEach(function (step) {
      var li = document.createElement("li");
      li.textContent = step.label;
      if (step.done) li.className = "done";
      steps.appendChild(li);
    });
    var bars = document.getElementById("bars");
    if (data.bars.length) {
      bars.innerHTML = "";
      data.bars.forEach(function (bar) {
        var row = document.createElement("div");
        row.className = "bar" + (bar.top ? " top" : "");
        var label = document.createElement("span");
        label.className = "label";
        label.textContent = bar.digit;
        var fill = document.createElement("span");
        fill.className = "fill";
        fill.style.width = bar.width + "%";
        row.appendChild(label);
        row.appendChild(fill);
        bars.appendChild(row);
      });
    }
    var payment = document.getElementById("payment");
    payment.hidden = !data.paid;
    if (data.paid) {
      document.getElementById("amount").textContent = data.amount + " sat";
      document.getElementById("txid").textContent = data.txid;
      document.getElementById("block").textContent = data.block_height
        ? data.block_height + " (" + data.confirmations + " confirmation" + (data.confirmations === 1 ? "" : "s") + ")"
        : "waiting for a block";
    }
    return data;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(render)
      .then(function (data) {
        // After payment, keep polling until the block arrives.
        if (data.state !== "confirmed" && data.state !== "rejected") setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  if (box.dataset.state !== "confirmed" && box.dataset.state !== "rejected") setTimeout(poll, 1000);
})();
