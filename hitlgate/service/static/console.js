// The approvers' console: passkey sign-in and passkey-signed votes (Contract C of issue 12).
//
// Loaded from this origin only (the pages' Content-Security-Policy allows no inline script).
// Before asking the passkey to sign a vote, the script checks that what the server asks it to
// sign is a statement about the request and digest shown on this page, with the verdict the
// approver clicked and the reason they typed (or none), and that the WebAuthn challenge is the
// SHA-256 of those exact bytes: a server (or a script injected into it) cannot get a passkey
// signature over something else while the page shows this request. The server verifies
// everything again.
"use strict";

(function () {
  const CSRF = { "X-Hitlgate-CSRF": "1", "Content-Type": "application/json" };

  function b64urlToBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function bytesToB64url(bytes) {
    const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let raw = "";
    for (let i = 0; i < view.length; i++) raw += String.fromCharCode(view[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // PublicKeyCredentialRequestOptions from their JSON form (the browser's parser when it has one).
  function requestOptions(json) {
    if (window.PublicKeyCredential && typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const options = Object.assign({}, json, { challenge: b64urlToBytes(json.challenge) });
    if (Array.isArray(json.allowCredentials)) {
      options.allowCredentials = json.allowCredentials.map(
        (c) => Object.assign({}, c, { id: b64urlToBytes(c.id) }));
    }
    return options;
  }

  // The assertion as JSON (the browser's toJSON when it has one).
  function assertionJSON(cred) {
    if (typeof cred.toJSON === "function") return cred.toJSON();
    const r = cred.response;
    return {
      id: cred.id,
      rawId: bytesToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        authenticatorData: bytesToB64url(r.authenticatorData),
        clientDataJSON: bytesToB64url(r.clientDataJSON),
        signature: bytesToB64url(r.signature),
        userHandle: r.userHandle ? bytesToB64url(r.userHandle) : undefined,
      },
    };
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: CSRF, credentials: "same-origin", body: JSON.stringify(body || {}),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    if (!response.ok) {
      const message = doc && doc.error && doc.error.message ? doc.error.message : "HTTP " + response.status;
      const code = doc && doc.error && doc.error.code ? doc.error.code : "error";
      const err = new Error(message);
      err.code = code;
      throw err;
    }
    return doc;
  }

  async function sha256b64url(text) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return bytesToB64url(digest);
  }

  function say(el, text, bad) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("bad", !!bad);
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") return "The passkey prompt was cancelled or timed out.";
    if (err && err.name === "SecurityError") return "The browser refused: this page's address does not match the passkey's site.";
    return err && err.message ? err.message : String(err);
  }

  // -- sign in ---------------------------------------------------------------
  function setUpLogin() {
    const box = document.getElementById("login");
    const button = document.getElementById("login-button");
    if (!box || !button) return;
    const status = document.getElementById("login-status");
    button.addEventListener("click", async () => {
      button.disabled = true;
      say(status, "Waiting for your passkey…");
      try {
        const options = await post("/ui/api/login/options", {});
        const cred = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
        const who = await post("/ui/api/login", assertionJSON(cred));
        say(status, "Signed in as " + who.approver + ".");
        const next = box.dataset.next || "/ui";
        // Only a path on this console: the server already dropped anything else.
        window.location.assign(next.startsWith("/ui") && !next.startsWith("//") ? next : "/ui");
      } catch (err) {
        say(status, explain(err), true);
        button.disabled = false;
      }
    });
  }

  // -- sign out --------------------------------------------------------------
  function setUpLogout() {
    const button = document.getElementById("logout");
    if (!button) return;
    button.addEventListener("click", async () => {
      try { await post("/ui/api/logout", {}); } finally { window.location.assign("/ui/login"); }
    });
  }

  // -- votes -----------------------------------------------------------------
  async function vote(verdict, reason) {
    const page = document.getElementById("request");
    const id = page.dataset.requestId;
    const digest = page.dataset.digest;
    const body = reason ? { verdict: verdict, reason: reason } : { verdict: verdict };
    const path = "/ui/api/requests/" + encodeURIComponent(id) + "/vote";
    const offer = await post(path + "/options", body);
    const signed = JSON.parse(offer.canonical);
    if (signed.request_id !== id || signed.action_digest !== digest || signed.verdict !== verdict) {
      throw new Error("Refused to sign: the statement the server sent is not a " + verdict +
        " of request " + id + " with digest " + digest + ".");
    }
    // The reason is signed too: exactly the words typed, or none when none were.
    if ((signed.reason || "") !== reason) {
      throw new Error("Refused to sign: the reason in the statement the server sent is not the one you typed.");
    }
    if (offer.publicKey.challenge !== await sha256b64url(offer.canonical)) {
      throw new Error("Refused to sign: the challenge is not the SHA-256 of the statement shown.");
    }
    if (offer.publicKey.userVerification !== "required") {
      throw new Error("Refused to sign: the server did not require user verification.");
    }
    const cred = await navigator.credentials.get({ publicKey: requestOptions(offer.publicKey) });
    return post(path, { statement: offer.statement, credential: assertionJSON(cred) });
  }

  function setUpVotes() {
    const form = document.getElementById("vote-form");
    if (!form) return;
    const status = document.getElementById("vote-status");
    const approve = document.getElementById("approve");
    const reject = document.getElementById("reject");
    const reason = document.getElementById("vote-reason");
    async function run(verdict) {
      const why = reason.value.trim();
      if (verdict === "reject" && !why) {
        say(status, "A rejection needs a reason: say why in the box above.", true);
        reason.focus();
        return;
      }
      approve.disabled = reject.disabled = true;
      say(status, "Waiting for your passkey…");
      try {
        // Both verdicts sign the reason typed: optional for an approval, needed for a rejection.
        const view = await vote(verdict, why);
        say(status, "Your " + verdict + " was recorded; the request is now " + view.status + ".");
        window.setTimeout(() => window.location.reload(), 600);
      } catch (err) {
        say(status, explain(err), true);
        approve.disabled = reject.disabled = false;
      }
    }
    approve.addEventListener("click", () => run("approve"));
    reject.addEventListener("click", () => run("reject"));
  }

  // -- countdowns -------------------------------------------------------------
  function words(seconds) {
    if (seconds <= 0) return "expired";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function setUpCountdowns() {
    const cells = Array.from(document.querySelectorAll("[data-expires]"));
    if (!cells.length) return;
    const tick = () => {
      const now = Date.now();
      for (const cell of cells) {
        const at = Date.parse(cell.dataset.expires);
        if (!Number.isNaN(at)) cell.textContent = words(Math.floor((at - now) / 1000));
      }
    };
    window.setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setUpLogin();
    setUpLogout();
    setUpVotes();
    setUpCountdowns();
  });
})();
