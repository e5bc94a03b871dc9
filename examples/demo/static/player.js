// Plays the signed HLS stream with hls.js (Chromium has no native HLS: Media Source Extensions do it).
//
// The backend signed a path token for /v/ID/ (/_t/<token>/v/ID/master.m3u8): the playlist names its
// segments relatively ("seg-003.ts"), so they carry the token with no code here. gateway-player.js
// (deploy/player/) renews the token from the page URL /m/ID/video before it expires and hands every
// later request the new one: playback outlives any number of tokens. nginx asks the gateway about each
// request: once the key is revoked, the next segment is refused (403), the renewal too, and playback
// stops at the end of what is buffered.
//
// window.demo records what happened, for tests/test_browser_demo.py.
(function () {
  "use strict";
  const video = document.getElementById("player");
  const status = document.getElementById("status");
  const log = document.getElementById("log");
  const tokenNote = document.getElementById("token");
  const demo = (window.demo = {
    loaded: [], refused: [], fatal: null, renewals: [], renewFailures: 0, stalls: [], times: [], kid: null,
    expires: null, lifetime: null,
  });
  if (!video || !video.dataset.src) {
    status.textContent = "nothing to play";
    return;
  }

  function note(text, ok) {
    const item = document.createElement("li");
    item.textContent = text;
    item.className = ok ? "ok" : "refused";
    log.prepend(item);
    while (log.children.length > 12) log.lastElementChild.remove();
  }

  function name(url) {
    return new URL(url).pathname.split("/").pop();
  }

  function showToken(tokens) {
    demo.kid = tokens.kid;
    demo.expires = tokens.expires;
    demo.lifetime = tokens.lifetime();
    const left = Math.max(0, tokens.expires - tokens.now()).toFixed(0);
    tokenNote.innerHTML = "";
    tokenNote.append("path token signed by ");
    const kid = document.createElement("code");
    kid.textContent = tokens.kid;
    tokenNote.append(kid, `, expires in ${left} s, renewed ${tokens.renewals} times`);
  }

  const tokens = new GatewayPlayer.Tokens({
    source: video.dataset.src,
    renewFrom: video.dataset.renew,
    onRenewed(token) {
      demo.renewals.push({ kid: token.params.gw_kid, iat: Number(token.params.gw_iat), exp: Number(token.params.gw_exp),
                           segment: token.segment });
      note(`token renewed: expires ${new Date(Number(token.params.gw_exp) * 1000).toISOString().slice(11, 19)}`, true);
    },
    onRenewFailed(error) {
      demo.renewFailures += 1;
      note(`renewal refused: ${error.message}`, false);
    },
  });
  demo.tokens = tokens;

  const noRetry = { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 };
  const hls = new Hls({
    maxBufferLength: 3, // a few segments ahead, not the whole stream: revocation shows within seconds
    maxMaxBufferLength: 4,
    xhrSetup: tokens.xhrSetup, // every playlist and segment request carries the current token
    fragLoadPolicy: {
      default: { maxTimeToFirstByteMs: 8000, maxLoadTimeMs: 20000, timeoutRetry: noRetry, errorRetry: noRetry },
    },
  });
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
    demo.loaded.push(data.frag.sn);
    note(`${name(data.frag.url)}  200 verified`, true);
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.frag && data.response) {
      demo.refused.push({ sn: data.frag.sn, code: data.response.code, url: name(data.frag.url) });
      note(`${name(data.frag.url)}  ${data.response.code} refused`, false);
      status.textContent = `segment ${name(data.frag.url)} refused (${data.response.code}): the URL no longer verifies`;
      status.className = "refused";
      tokens.stop();
    }
    if (data.fatal) demo.fatal = data.details;
  });

  // Stalls: from "waiting" (or "stalled") to the next "playing", once playback has begun.
  let started = false;
  let waitingSince = null;
  video.addEventListener("playing", () => {
    if (waitingSince !== null) demo.stalls.push((performance.now() - waitingSince) / 1000);
    started = true;
    waitingSince = null;
  });
  for (const event of ["waiting", "stalled"]) {
    video.addEventListener(event, () => {
      if (started && waitingSince === null) waitingSince = performance.now();
    });
  }
  video.addEventListener("timeupdate", () => {
    demo.times.push([performance.now() / 1000, video.currentTime]);
    showToken(tokens);
    if (!demo.refused.length) {
      status.textContent = `playing ${video.currentTime.toFixed(1)} s, ${demo.loaded.length} segments verified`;
    }
  });
  showToken(tokens);
  hls.loadSource(tokens.url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
})();
