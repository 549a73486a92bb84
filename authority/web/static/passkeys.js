// Passkeys (WebAuthn): the browser half of registration and login. Loaded as a
// file so the Content-Security-Policy can forbid inline script.
(function () {
  "use strict";

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = window.atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(url, csrf, body) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data.error_description || data.error || response.status); }
        return data;
      });
    });
  }

  function credentialJson(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return json;
  }

  function report(status, message) {
    if (status) { status.textContent = message; }
  }

  var login = document.getElementById("passkey-login");
  if (login && window.PublicKeyCredential) {
    login.hidden = false;
    login.addEventListener("click", function () {
      var csrf = login.getAttribute("data-csrf");
      var status = document.getElementById("passkey-status");
      post("/login/passkey/options", csrf).then(function (options) {
        options.challenge = toBytes(options.challenge);
        (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
        return navigator.credentials.get({ publicKey: options });
      }).then(function (credential) {
        return post("/login/passkey", csrf, {
          credential: credentialJson(credential),
          request: login.getAttribute("data-request")
        });
      }).then(function (next) {
        window.location.assign(next.location);
      }).catch(function (error) { report(status, error.message); });
    });
  }

  var add = document.getElementById("passkey-add");
  if (add && window.PublicKeyCredential) {
    add.hidden = false;
    add.addEventListener("click", function () {
      var csrf = add.getAttribute("data-csrf");
      var status = document.getElementById("passkey-status");
      post("/account/passkeys/options", csrf).then(function (options) {
        options.challenge = toBytes(options.challenge);
        options.user.id = toBytes(options.user.id);
        (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
        return navigator.credentials.create({ publicKey: options });
      }).then(function (credential) {
        return post("/account/passkeys", csrf, credentialJson(credential));
      }).then(function () {
        window.location.reload();
      }).catch(function (error) { report(status, error.message); });
    });
  }
}());
