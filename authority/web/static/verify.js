// Camera scanning on /verify: no app, no third-party code. Where the browser has
// BarcodeDetector the QR is read on the device; elsewhere a frame a second is sent
// to /api/v1/verify, which reads QR codes in images. A QR of this authority opens
// its own verification page; any other text is checked through the API.
(function () {
  "use strict";
  var start = document.getElementById("scan-start");
  var stop = document.getElementById("scan-stop");
  var video = document.getElementById("scan-video");
  var status = document.getElementById("scan-status");
  var section = document.querySelector(".scanner");
  if (!start || !video) { return; }
  var stream = null;
  var timer = null;
  var busy = false;
  var detector = ("BarcodeDetector" in window) ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;

  function ours(text) {
    try {
      var url = new URL(text);
      return url.origin === window.location.origin && /^\/v\//i.test(url.pathname);
    } catch (e) { return false; }
  }

  function open(text) {
    halt();
    if (ours(text)) {
      var url = new URL(text);
      window.location.assign(url.pathname);
      return;
    }
    var payload = text.split("/").pop();
    window.location.assign("/v/" + encodeURIComponent(payload));
  }

  function halt() {
    if (timer) { window.clearInterval(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    video.hidden = true;
    stop.hidden = true;
    start.hidden = false;
  }

  function submitFrame(blob) {
    var input = document.getElementById("file");
    var transfer = new DataTransfer();
    transfer.items.add(new File([blob], "qr.jpg", { type: "image/jpeg" }));
    input.files = transfer.files;
    halt();
    input.form.submit();
  }

  function frame() {
    if (busy || !stream || video.readyState < 2) { return; }
    busy = true;
    if (detector) {
      detector.detect(video).then(function (codes) {
        busy = false;
        if (codes.length) { open(codes[0].rawValue); }
      }, function () { busy = false; });
      return;
    }
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      var body = new FormData();
      body.append("file", blob, "frame.jpg");
      fetch("/api/v1/verify", { method: "POST", body: body }).then(function (response) {
        busy = false;
        if (!response.ok) { return null; }
        return response.json();
      }).then(function (report) {
        // A QR was found in the frame: show its report as a page, through the upload form.
        if (report && report.form === "qr") { submitFrame(blob); }
      }, function () { busy = false; });
    }, "image/jpeg", 0.85);
  }

  start.addEventListener("click", function () {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      status.textContent = section.getAttribute("data-unavailable");
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        stop.hidden = false;
        start.hidden = true;
        status.textContent = "";
        return video.play();
      })
      .then(function () { timer = window.setInterval(frame, detector ? 250 : 1000); })
      .catch(function () {
        halt();
        status.textContent = section.getAttribute("data-unavailable");
      });
  });
  stop.addEventListener("click", halt);
}());
