// gateway-player.js: playback longer than a token, for hls.js (plain JavaScript, no build step, no dependency).
//
// A signed URL lives for minutes; a film lasts hours. This keeps an HLS stream playing across token
// lifetimes: before the current token expires it asks the stable page URL (/m/ID/video, which answers
// 302 with a freshly signed URL, using the viewer's cookie) for a new one, and from then on every
// playlist and segment request carries the new token. Nothing stalls: requests made while a renewal
// is due but not back wait for it only if their token would expire first.
//
// Both token forms work (docs/native-format.md): a path token (/_t/<token>/v/ID/...) is swapped in
// the path, a query prefix token (?gw_exp=...&gw_pfx=/v/ID/&...) in the query, added to relative
// segment URLs that lost it. The page URL must answer a prefix token (gateway.toml: [pages]
// scope = "prefix", and form = "path" for path tokens).
//
// Revocation still works: a revoked key's token is refused at the next request, and so is the renewal
// (the page URL signs nothing with a revoked key, and nothing for a viewer who lost access).
//
//   <script src="hls.min.js"></script>
//   <script src="gateway-player.js"></script>
//   <script>
//     const tokens = new GatewayPlayer.Tokens({ source: SIGNED_URL, renewFrom: "/m/intro/video" });
//     const hls = new Hls({ xhrSetup: tokens.xhrSetup });
//     hls.loadSource(tokens.url);
//     hls.attachMedia(document.querySelector("video"));
//   </script>
//
// Options: source (the first signed URL), renewFrom (the page URL), renewBefore (seconds before expiry;
// default a quarter of the token's lifetime, from 2 to 60 s), retryEvery (seconds between failed
// renewals, default 2), onRenewed(token) and onRenewFailed(error) callbacks, fetch (for tests).
// Timers run on the browser's clock, corrected by the Date header of each renewal's answer.
(function (root) {
  "use strict";

  const MARKER = "/_t/";

  function decodeBase64Url(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return atob(padded);
  }

  function params(text) {
    const found = {};
    for (const pair of text.split("&")) {
      const at = pair.indexOf("=");
      if (at > 0) found[pair.slice(0, at)] = pair.slice(at + 1);
    }
    return found;
  }

  // gw_pfx as a path: the query form escapes '&', '+' and '=' (which a path holds literally), nothing else.
  function prefixPath(pfx) {
    return pfx.replace(/%26/g, "&").replace(/%2B/g, "+").replace(/%3D/g, "=");
  }

  // What a signed URL carries: its form, its parameters (gw_exp, gw_iat, gw_kid, gw_pfx, ...) and, for a
  // path token, its segment; for a query token, the gw_ part of its query as signed.
  function parseToken(href) {
    const url = new URL(href, root.location && root.location.href);
    if (url.pathname.startsWith(MARKER)) {
      const segment = url.pathname.slice(MARKER.length).split("/")[0];
      return { form: "path", segment, params: params(decodeBase64Url(segment)), origin: url.origin, url: url.href };
    }
    const query = url.search.slice(1).split("&").filter((p) => p.startsWith("gw_")).join("&");
    return { form: "query", query, params: params(query), origin: url.origin, url: url.href };
  }

  class Tokens {
    constructor(options) {
      this.options = Object.assign({ renewBefore: null, retryEvery: 2 }, options);
      this.skew = 0; // seconds the server's clock is ahead of this browser's
      this.renewals = 0;
      this.failures = 0;
      this.pending = null;
      this.timer = null;
      this.stopped = false;
      this.fetch = this.options.fetch || root.fetch.bind(root);
      this.xhrSetup = this.xhrSetup.bind(this);
      this.adopt(parseToken(this.options.source));
    }

    get url() {
      return this.current.url;
    }

    get kid() {
      return this.current.params.gw_kid;
    }

    get expires() {
      return Number(this.current.params.gw_exp);
    }

    // The server's time, in seconds.
    now() {
      return Date.now() / 1000 + this.skew;
    }

    lifetime() {
      return Math.max(1, this.expires - Number(this.current.params.gw_iat || this.now()));
    }

    renewBefore() {
      const given = this.options.renewBefore;
      return given != null ? given : Math.min(60, Math.max(2, this.lifetime() / 4));
    }

    adopt(token) {
      if (!token.params.gw_exp || !token.params.gw_pfx) {
        throw new Error("not a prefix token (no gw_exp or gw_pfx): set [pages] scope = \"prefix\"");
      }
      this.current = token;
      this.schedule();
    }

    schedule() {
      clearTimeout(this.timer);
      if (this.stopped) return;
      const due = (this.expires - this.renewBefore() - this.now()) * 1000;
      this.timer = setTimeout(() => this.renew(), Math.max(0, due));
    }

    // A renewal, once: the page URL's redirect, followed to the fresh URL (its playlist: a real check).
    renew() {
      if (this.pending || this.stopped) return this.pending;
      this.pending = this.fetch(this.options.renewFrom, { credentials: "same-origin", cache: "no-store" })
        .then((answer) => {
          if (!answer.ok) throw new Error(`the page URL answered ${answer.status}`);
          const date = Date.parse(answer.headers.get("Date") || "");
          if (!Number.isNaN(date)) this.skew = (date - Date.now()) / 1000;
          this.adopt(parseToken(answer.url));
          this.renewals += 1;
          if (this.options.onRenewed) this.options.onRenewed(this.current);
        })
        .catch((error) => {
          this.failures += 1;
          if (this.options.onRenewFailed) this.options.onRenewFailed(error);
          clearTimeout(this.timer);
          if (!this.stopped && this.now() < this.expires) {
            this.timer = setTimeout(() => this.renew(), this.options.retryEvery * 1000);
          }
        })
        .finally(() => {
          this.pending = null;
        });
      return this.pending;
    }

    // Resolves when the current token will still be good for a request about to be made.
    ready() {
      const due = this.expires - this.renewBefore();
      if (this.now() < due) return Promise.resolve();
      const renewal = this.renew() || Promise.resolve();
      // Within a second of expiry, wait for the new token; otherwise go now and let the renewal land.
      return this.now() < this.expires - 1 ? Promise.resolve() : renewal;
    }

    // ``href`` carrying the current token: same origin, under the token's prefix.
    sign(href) {
      const url = new URL(href, this.current.url);
      const token = this.current;
      if (url.origin !== token.origin) return url.href;
      if (token.form === "path") {
        if (!url.pathname.startsWith(MARKER)) return url.href;
        const rest = url.pathname.slice(MARKER.length);
        url.pathname = MARKER + token.segment + rest.slice(rest.indexOf("/"));
        return url.href;
      }
      if (!url.pathname.startsWith(prefixPath(token.params.gw_pfx))) return url.href;
      const others = url.search.slice(1).split("&").filter((p) => p && !p.startsWith("gw_"));
      url.search = "?" + others.concat([token.query]).join("&");
      return url.href;
    }

    // hls.js's xhrSetup (awaited by hls.js 1.5+): wait if the token is about to expire, then open the
    // request with the current token.
    xhrSetup(xhr, url) {
      return this.ready().then(() => {
        xhr.open("GET", this.sign(url), true);
      });
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
    }
  }

  root.GatewayPlayer = { Tokens, parseToken };
})(typeof window !== "undefined" ? window : globalThis);
