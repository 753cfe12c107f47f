// Search by photo: shrink the photo in the browser before it travels (a 4 MB phone photo
// becomes a ~60 KB JPEG of at most 512 px), then post the form as usual. Without this file,
// or when anything here fails, the form posts the original file: the page works either way.
"use strict";

(function init() {
  var form = document.getElementById("photo-search");
  if (!form || !window.fetch || !window.FormData || !window.URL || !HTMLCanvasElement.prototype.toBlob) return;
  var input = form.querySelector("input[type=file][name=photo]");
  var MAX = 512;
  form.addEventListener("submit", function (ev) {
    var file = input && input.files && input.files[0];
    if (!file || form.dataset.sending) return;
    ev.preventDefault();
    form.dataset.sending = "1";
    var fallback = function () { form.submit(); };
    var img = new Image();
    var url = URL.createObjectURL(file);
    img.onerror = function () { URL.revokeObjectURL(url); fallback(); };
    img.onload = function () {
      URL.revokeObjectURL(url);
      var scale = Math.min(1, MAX / Math.max(img.naturalWidth, img.naturalHeight));
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
      canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
      canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        if (!blob) return fallback();
        var data = new FormData(form);
        data.set("photo", blob, "photo.jpg");
        fetch(form.action, { method: "POST", body: data, credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            var main = doc.querySelector("main.page");
            if (!main) throw new Error("no page");
            document.querySelector("main.page").replaceWith(document.importNode(main, true));
            init();
          })
          .catch(fallback);
      }, "image/jpeg", 0.85);
    };
    img.src = url;
  });
})();
