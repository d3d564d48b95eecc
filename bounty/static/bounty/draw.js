// Progressive enhancement of the submission form: a drawing canvas (mouse, pen and touch) and an address
// check as you type. Without JavaScript the form still works with a file upload.
(function () {
  "use strict";
  var form = document.getElementById("submission-form");
  var canvas = document.getElementById("canvas");
  if (!form || !canvas || !canvas.getContext) return;
  document.getElementById("draw-area").hidden = false;
  var ctx = canvas.getContext("2d");
  var drawing = false, inked = false, last = null;

  function reset() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    inked = false;
  }
  function point(event) {
    var box = canvas.getBoundingClientRect();
    return {
      x: (event.clientX - box.left) * canvas.width / box.width,
      y: (event.clientY - box.top) * canvas.height / box.height
    };
  }
  function stroke(to) {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(last.x, last.y);
    ctx.lineTo(to.x + 0.01, to.y);
    ctx.stroke();
    last = to;
    inked = true;
  }
  canvas.addEventListener("pointerdown", function (event) {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    stroke(last);
  });
  canvas.addEventListener("pointermove", function (event) {
    if (drawing) { event.preventDefault(); stroke(point(event)); }
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach(function (name) {
    canvas.addEventListener(name, function () { drawing = false; });
  });
  canvas.style.touchAction = "none";  // a finger draws instead of scrolling the page
  document.getElementById("clear").addEventListener("click", reset);
  reset();

  form.addEventListener("submit", function (event) {
    var file = form.querySelector("input[type=file]");
    var hidden = form.querySelector("input[name=drawing]");
    if (file && file.files.length) { hidden.value = ""; return; }
    if (!inked) {
      event.preventDefault();
      alert("Draw a digit first (or choose an image file).");
      return;
    }
    hidden.value = canvas.toDataURL("image/png");
  });

  var address = form.querySelector("input[name=payout_address]");
  var status = document.getElementById("address-status");
  var url = document.currentScript && document.currentScript.dataset.checkUrl;
  var timer = null;
  if (address && status && url) {
    address.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var value = address.value.trim();
        if (!value) { status.textContent = ""; return; }
        fetch(url + "?address=" + encodeURIComponent(value), { headers: { Accept: "application/json" } })
          .then(function (response) { return response.json(); })
          .then(function (answer) {
            status.textContent = answer.message;
            status.className = answer.valid ? "hint ok" : "hint error";
            address.setAttribute("aria-invalid", answer.valid ? "false" : "true");
          })
          .catch(function () {});
      }, 250);
    });
  }
})();
