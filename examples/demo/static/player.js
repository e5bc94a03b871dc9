// Plays the signed HLS stream with hls.js (Chromium has no native HLS: Media Source Extensions do it).
//
// The gateway signed one prefix token for /v/ID/; the playlist names its segments relatively
// ("seg-003.ts"), and a relative URL loses the playlist's query string, so every request without
// a query gets the token added here. nginx asks the gateway about each of them: once the key is
// revoked, the next segment is refused (403) and playback stops at the end of what is buffered.
//
// window.demo records what happened, for tests/test_browser_demo.py.
(function () {
  "use strict";
  const video = document.getElementById("player");
  const status = document.getElementById("status");
  const log = document.getElementById("log");
  const demo = (window.demo = { loaded: [], refused: [], fatal: null });
  if (!video || !video.dataset.src) {
    status.textContent = "nothing to play";
    return;
  }
  const source = video.dataset.src;
  const token = new URL(source).search;

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

  const noRetry = { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 };
  const hls = new Hls({
    maxBufferLength: 3, // a few segments ahead, not the whole stream: revocation shows within seconds
    maxMaxBufferLength: 4,
    xhrSetup(xhr, url) {
      const signed = new URL(url);
      if (!signed.search) signed.search = token;
      xhr.open("GET", signed.toString(), true);
    },
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
    }
    if (data.fatal) demo.fatal = data.details;
  });
  video.addEventListener("timeupdate", () => {
    if (!demo.refused.length) {
      status.textContent = `playing ${video.currentTime.toFixed(1)} s, ${demo.loaded.length} segments verified`;
    }
  });
  hls.loadSource(source);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
})();
