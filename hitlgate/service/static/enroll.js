// The enrolment page of a one-time link: create a passkey and send it to the server.
// A file, not inline script: the console's CSP allows scripts from its own origin only.
"use strict";

(function () {
  function b64urlToBytes(text) {
    const pad = "=".repeat((4 - (text.length % 4)) % 4);
    const bin = atob((text + pad).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function bytesToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // Creation options from the server's JSON: the browser's own parser when it has one.
  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const opts = Object.assign({}, json);
    opts.challenge = b64urlToBytes(json.challenge);
    opts.user = Object.assign({}, json.user, { id: b64urlToBytes(json.user.id) });
    opts.excludeCredentials = (json.excludeCredentials || []).map((c) =>
      Object.assign({}, c, { id: b64urlToBytes(c.id) }));
    return opts;
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    return {
      id: cred.id,
      rawId: bytesToB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: bytesToB64url(cred.response.clientDataJSON),
        attestationObject: bytesToB64url(cred.response.attestationObject),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Hitlgate-CSRF": "1" },
      body: JSON.stringify(body),
    });
    const doc = await resp.json();
    if (!resp.ok) throw new Error(doc.error ? doc.error.message : "HTTP " + resp.status);
    return doc;
  }

  async function enrol() {
    const status = document.getElementById("status");
    const button = document.getElementById("enroll");
    const token = decodeURIComponent(window.location.pathname.split("/").pop());
    button.disabled = true;
    status.textContent = "Waiting for your passkey...";
    try {
      const options = await post("/ui/api/enroll/options", { token: token });
      const cred = await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
      const done = await post("/ui/api/enroll", { token: token, credential: credentialJSON(cred) });
      status.textContent = "Passkey enrolled for " + done.approver + ".";
      status.dataset.state = "enrolled";
      button.hidden = true;
      document.getElementById("next").hidden = false;
    } catch (err) {
      status.textContent = "Enrolment failed: " + err.message;
      status.dataset.state = "failed";
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const button = document.getElementById("enroll");
    if (button) button.addEventListener("click", enrol);
  });
})();
