// Progressive enhancement of the submission form. Without JavaScript the form still works with a file upload.
//  - a drawing canvas (mouse, pen and touch, through pointer events);
//  - photos shrunk in the browser before upload (longer side 1024 px, EXIF orientation applied), and
//    anything that is not a readable image refused here, with what to do;
//  - the address checked as you type; Submit is off, with the reason beside it, while it is not valid;
//  - a refused submit keeps the drawing, the photo and the address (the drawing comes back in its hidden
//    field; sessionStorage covers what the server could not send back).
(function () {
  "use strict";
  var form = document.getElementById("submission-form");
  var canvas = document.getElementById("canvas");
  if (!form || !canvas || !canvas.getContext) return;

  var LONG_SIDE = 1024;
  var open = form.dataset.open === "true";
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 2 * 1024 * 1024;
  var storageKey = "bounty-form:" + location.pathname;
  var ctx = canvas.getContext("2d");
  var hidden = form.querySelector("input[name=drawing]");
  var file = form.querySelector("input[type=file]");
  var address = form.querySelector("input[name=payout_address]");
  var addressStatus = document.getElementById("address-status");
  var imageStatus = document.getElementById("image-status");
  var submit = document.getElementById("submit");
  var submitReason = document.getElementById("submit-reason");
  var label = canvas.getAttribute("aria-label") || "Drawing box";
  var drawing = false, inked = false, last = null;
  var addressValid = null;   // null: not checked yet; true or false: what the last check said
  var preparing = false;     // a photo is being shrunk
  var photo = null;          // the shrunk photo: {name, type, dataUrl}

  document.getElementById("draw-area").hidden = false;

  // ---- The drawing ------------------------------------------------------------------------------------
  function setInked(value) {
    inked = value;
    canvas.setAttribute("aria-label", label + (inked ? ": your drawing" : ": empty"));
    if (inked) updateSubmit();
  }
  function reset() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    setInked(false);
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
    if (!inked) setInked(true);
  }
  function restoreDrawing(dataUrl) {
    if (!/^data:image\/(png|jpeg);base64,/.test(dataUrl || "")) return;
    var image = new Image();
    image.onload = function () {
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      setInked(true);
    };
    image.src = dataUrl;
  }
  var sentDrawing = hidden.value;  // the server sends a refused drawing back in its hidden field
  reset();
  if (open) {
    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      if (canvas.setPointerCapture) canvas.setPointerCapture(event.pointerId);
      drawing = true;
      last = point(event);
      stroke(last);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (drawing) { event.preventDefault(); stroke(point(event)); }
    });
    ["pointerup", "pointercancel", "pointerleave"].forEach(function (name) {
      canvas.addEventListener(name, function () {
        if (drawing) { drawing = false; updateSubmit(); }
      });
    });
    document.getElementById("clear").addEventListener("click", function () {
      reset();
      hidden.value = "";
      updateSubmit();
    });
  }

  // ---- Photos: shrink in the browser, refuse what is not an image -------------------------------------
  function say(element, text, isError) {
    element.textContent = text;
    element.className = "hint" + (isError ? " error" : " ok");
  }
  function megabytes(size) {
    return size >= 1024 * 1024 ? (size / 1048576).toFixed(1).replace(/\.0$/, "") + " MB"
      : Math.max(1, Math.floor(size / 1024)) + " KB";
  }
  function decode(blob) {
    // createImageBitmap applies the photo's EXIF orientation ("from-image"); an <img> element does too.
    if (window.createImageBitmap) {
      return createImageBitmap(blob, { imageOrientation: "from-image" }).catch(function () {
        return decodeWithImage(blob);
      });
    }
    return decodeWithImage(blob);
  }
  function decodeWithImage(blob) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(blob);
      var image = new Image();
      image.onload = function () { resolve(image); };
      image.onerror = function () { reject(new Error("not an image")); };
      image.src = url;
    });
  }
  function toBlob(target, type, quality) {
    return new Promise(function (resolve) { target.toBlob(resolve, type, quality); });
  }
  function blobToDataUrl(blob) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = reject;
      reader.readAsDataURL(blob);
    });
  }
  function dataUrlToFile(dataUrl, name, type) {
    var bytes = atob(dataUrl.split(",")[1]);
    var array = new Uint8Array(bytes.length);
    for (var i = 0; i < bytes.length; i++) array[i] = bytes.charCodeAt(i);
    return new File([array], name, { type: type });
  }
  function putFile(newFile) {
    if (!window.DataTransfer) return false;
    try {
      var transfer = new DataTransfer();
      transfer.items.add(newFile);
      file.files = transfer.files;
      return true;
    } catch (error) { return false; }
  }
  function shrink(source) {
    return decode(source).then(function (image) {
      var width = image.width, height = image.height;
      var scale = Math.min(1, LONG_SIDE / Math.max(width, height));
      var out = document.createElement("canvas");
      out.width = Math.max(1, Math.round(width * scale));
      out.height = Math.max(1, Math.round(height * scale));
      var g = out.getContext("2d");
      var png = source.type === "image/png";
      if (!png) { g.fillStyle = "#fff"; g.fillRect(0, 0, out.width, out.height); }
      g.drawImage(image, 0, 0, out.width, out.height);
      if (image.close) image.close();
      var attempts = png ? [["image/png"], ["image/jpeg", 0.9], ["image/jpeg", 0.7], ["image/jpeg", 0.5]]
        : [["image/jpeg", 0.9], ["image/jpeg", 0.7], ["image/jpeg", 0.5]];
      function attempt(index) {
        var kind = attempts[index];
        return toBlob(out, kind[0], kind[1]).then(function (blob) {
          if (blob && blob.size <= maxBytes) return { blob: blob, width: out.width, height: out.height };
          if (index + 1 < attempts.length) return attempt(index + 1);
          var error = new Error("too large");
          error.size = blob ? blob.size : 0;
          throw error;
        });
      }
      return attempt(0);
    });
  }
  function preparePhoto() {
    photo = null;
    if (!file.files.length) { imageStatus.textContent = ""; updateSubmit(); return; }
    var chosen = file.files[0];
    preparing = true;
    say(imageStatus, "Preparing your photo…", false);
    updateSubmit();
    shrink(chosen).then(function (result) {
      var name = (chosen.name || "photo").replace(/\.[^.]*$/, "") + (result.blob.type === "image/png" ? ".png" : ".jpg");
      var ready = new File([result.blob], name, { type: result.blob.type });
      putFile(ready);
      say(imageStatus, "Photo ready (" + result.width + "×" + result.height + " pixels, " + megabytes(ready.size)
        + "): it is sent instead of the drawing.", false);
      return blobToDataUrl(ready).then(function (dataUrl) {
        photo = { name: name, type: ready.type, dataUrl: dataUrl };
      });
    }).catch(function (error) {
      file.value = "";
      if (error && error.message === "too large") {
        say(imageStatus, "This photo is too large even after shrinking it (" + megabytes(error.size)
          + "; the limit is " + megabytes(maxBytes) + "). Crop it closer to the digit, or choose another photo.", true);
      } else {
        say(imageStatus, "This file is not an image this page can read. Choose a PNG or JPEG photo of your "
          + "handwritten digit, or draw the digit in the box instead.", true);
      }
    }).then(function () {
      preparing = false;
      updateSubmit();
    });
  }
  if (file) file.addEventListener("change", preparePhoto);

  // ---- Submit: off, with the reason beside it, while it cannot succeed ----------------------------------
  var nudge = "";  // what a submit with nothing drawn or chosen asked for, until something is
  function updateSubmit() {
    if (!open) return;
    if (inked || (file && file.files.length)) nudge = "";
    var reason = "";
    if (preparing) reason = "Wait a moment: your photo is being prepared.";
    else if (addressValid === false) reason = "Submit is turned off until the address above is valid.";
    submit.disabled = Boolean(reason);
    var text = reason || nudge;
    if (submitReason.textContent !== text) submitReason.textContent = text;
    submitReason.className = "hint" + (text ? " error" : "");
  }

  form.addEventListener("submit", function (event) {
    if (!open || submit.disabled) { event.preventDefault(); return; }
    if (file && file.files.length) {
      hidden.value = "";
    } else if (!inked) {
      event.preventDefault();
      nudge = "Draw a digit in the box first, or choose a photo to upload.";
      updateSubmit();
      return;
    } else {
      hidden.value = canvas.toDataURL("image/png");
    }
    save();
  });

  // ---- Keeping what was entered across a refused submit ------------------------------------------------
  function save() {
    var state = {
      address: address ? address.value : "",
      drawing: hidden.value || (inked ? canvas.toDataURL("image/png") : ""),
      photo: file && file.files.length ? photo : null
    };
    try { sessionStorage.setItem(storageKey, JSON.stringify(state)); } catch (error) {
      try {  // the photo may not fit: keep the rest
        state.photo = null;
        sessionStorage.setItem(storageKey, JSON.stringify(state));
      } catch (ignored) { /* storage off: the server's copy of the drawing and address remain */ }
    }
  }
  function restore() {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(storageKey) || "null"); } catch (error) { saved = null; }
    if (form.dataset.refused !== "true") {
      try { sessionStorage.removeItem(storageKey); } catch (error) { /* nothing kept */ }
      return;
    }
    saved = saved || {};
    if (open) restoreDrawing(sentDrawing || saved.drawing);
    if (address && !address.value && saved.address) address.value = saved.address;
    if (open && saved.photo && form.dataset.imageRefused !== "true"
        && putFile(dataUrlToFile(saved.photo.dataUrl, saved.photo.name, saved.photo.type))) {
      photo = saved.photo;
      say(imageStatus, "Your photo is still chosen: it is sent instead of the drawing.", false);
    }
  }
  restore();

  // ---- The address, checked as you type -----------------------------------------------------------------
  var url = form.dataset.checkUrl;
  var timer = null, asked = 0;
  function check() {
    var value = address.value.trim();
    if (!value) {
      addressValid = null;
      addressStatus.textContent = "The reward is paid to this address if the network accepts your digit.";
      addressStatus.className = "hint";
      address.removeAttribute("aria-invalid");
      updateSubmit();
      return;
    }
    var ticket = ++asked;
    fetch(url + "?address=" + encodeURIComponent(value), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (ticket !== asked) return;  // a later check is under way
        addressValid = Boolean(answer.valid);
        say(addressStatus, answer.message, !answer.valid);
        address.setAttribute("aria-invalid", answer.valid ? "false" : "true");
        // A payment link (bitcoin:ADDRESS?amount=...): show the address that will be paid.
        if (answer.valid && answer.address && answer.address !== value && address.value.trim() === value) {
          address.value = answer.address;
        }
        updateSubmit();
      })
      .catch(function () {});
  }
  if (address && addressStatus && url && open) {
    address.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    if (address.value.trim()) check();
  }
  updateSubmit();
})();
