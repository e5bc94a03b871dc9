-- Edge mode's entry points (docs/edge.md): access(), status(), and init_worker() to start the timers.
--
--   lua_shared_dict media_gateway_edge_state 16m;      -- keys, principals, revocations: never evicted
--   lua_shared_dict media_gateway_edge_decisions 32m;  -- remembered signatures, redemption marks: a cache
--   lua_shared_dict media_gateway_edge_status 1m;      -- version, freshness, counters
--   init_worker_by_lua_block { require("media_gateway.edge").init_worker({ feed_url = "http://…" }) }
--   location /v/ { access_by_lua_block { require("media_gateway.edge").access() } … }
local cjson = require "cjson.safe"
local rules = require "media_gateway.rules"
local crypto = require "media_gateway.crypto"
local feed = require "media_gateway.feed"
local report = require "media_gateway.report"

local ngx = ngx
local state_dict = ngx.shared.media_gateway_edge_state
local decisions = ngx.shared.media_gateway_edge_decisions
local status_dict = ngx.shared.media_gateway_edge_status
local sha1 = ngx.sha1_bin

local _M = {}
-- remember = false: every request checks its signature (benchmarks/bench_edge.py's "new URL every request").
local options = { stale_after = 2.0, ask_location = "/_gateway_verify", remember = true }
local logged_at = {}  -- per reason: log a state problem once a second, not once a request

local function log_once(reason, message)
    local now = ngx.now()
    if (logged_at[reason] or 0) + 1 <= now then
        logged_at[reason] = now
        ngx.log(ngx.ERR, message)
    end
end

-- Per worker: keys parsed from the zone, thrown away whenever the state's version moves.
local parsed = { version = -1, keys = {}, revocations = nil }

local function current_version()
    local version = status_dict:get("generation") or -1
    if version ~= parsed.version then
        parsed.version, parsed.keys, parsed.revocations = version, {}, nil
    end
end

local function key(kid)
    local found = parsed.keys[kid]
    if found == nil then
        local text = state_dict:get("k:" .. kid)
        if text == nil then
            return nil
        end
        local algorithm, principal, not_after, revoked, material =
            string.match(text, "^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
        found = {
            algorithm = algorithm, principal = principal, not_after = tonumber(not_after),
            revoked = revoked == "1", material = material ~= "" and material or nil,
        }
        parsed.keys[kid] = found
    end
    return found
end

-- The revocation tables as lookups: links[path] (the path itself) and links[dir .. "\0"] (under a directory);
-- grants[principal] likewise. Parsed once per worker per state version.
local function revocations()
    if parsed.revocations == nil then
        local raw = cjson.decode(state_dict:get("revocations") or "") or {}
        local links, grants = {}, {}
        for _, row in ipairs(raw.links or {}) do
            links[row[2] and row[1] .. "\0" or row[1]] = row[3]
        end
        for _, row in ipairs(raw.grants or {}) do
            local mine = grants[row[1]] or {}
            grants[row[1]] = mine
            mine[row[3] and row[2] .. "\0" or row[2]] = row[4]
        end
        parsed.revocations = { links = links, grants = grants }
    end
    return parsed.revocations
end

local state = {
    key = key,
    principal_disabled = function(id)
        return state_dict:get("p:" .. id) ~= 0  -- missing: disabled, as the gateway's keyring says
    end,
    links = function(path)
        local r = revocations()
        if next(r.links) == nil then
            return nil  -- the usual case: nothing revoked
        end
        return rules.newest(path, function(p) return r.links[p] end, function(d) return r.links[d .. "\0"] end)
    end,
    grants = function(principal, path)
        local g = revocations().grants[principal]
        if g == nil then
            return nil
        end
        return rules.newest(path, function(p) return g[p] end, function(d) return g[d .. "\0"] end)
    end,
    max_ahead = 3660,
}

-- Rule 6, remembered across workers by a digest of what was signed until the token expires, and in this
-- worker on the parsed prefix token itself (its string to sign does not depend on the segment).
local function signature_ok(token, path, k)
    if k.material == nil then
        return nil  -- an HMAC key whose secret the edge is not given
    end
    if options.remember and token.prefix and token.verified == k.material then
        return true
    end
    local message = rules.string_to_sign(token, path, k.algorithm)
    if message == nil then
        return nil  -- a query the gateway names malformed
    end
    local signature = rules.signature(token.params.gw_sig)
    if signature == nil then
        return false
    end
    local memo = "s:" .. sha1(message .. "\0" .. signature)
    if options.remember and decisions:get(memo) then
        return true
    end
    local ok
    if k.algorithm == "ed25519" then
        ok = crypto.ed25519_verify(k.material, message, signature)
    elseif k.algorithm == "hmac-sha256" then
        ok = crypto.hmac_sha256_verify(k.material, message, signature)
    else
        return nil
    end
    if ok and options.remember then
        local ttl = token.expires - ngx.now()
        if ttl > 0 then
            decisions:set(memo, true, ttl)  -- a cache: evicting is fine, the next request checks again
        end
        if token.prefix then
            token.verified = k.material
        end
    end
    return ok
end

-- The reasons counted in /_gateway_edge_status (the gateway's own names, and why the gateway was asked).
local DENY_REASONS = {
    "method-not-allowed", "state-stale", "state-full", "key-revoked", "key-expired", "principal-disabled", "bad-signature", "expired",
    "not-yet-valid", "outside-prefix", "wrong-ip", "expiry-too-far", "links-revoked", "grant-revoked",
}
local ASK_REASONS = { "target", "path", "no-token", "token", "prefix", "unknown-key", "no-material", "ip" }

local function deny(reason, status)
    ngx.log(ngx.INFO, "media-gateway edge deny ", reason)
    status_dict:incr("denied", 1, 0)
    status_dict:incr("deny:" .. reason, 1, 0)
    return ngx.exit(status or ngx.HTTP_FORBIDDEN)
end

local function ask(reason)
    status_dict:incr("asked", 1, 0)
    status_dict:incr("ask:" .. reason, 1, 0)
    local res = ngx.location.capture(options.ask_location)
    if res.status == ngx.HTTP_OK then
        return
    end
    if res.status == ngx.HTTP_FORBIDDEN or res.status == ngx.HTTP_UNAUTHORIZED then
        return ngx.exit(res.status)
    end
    ngx.log(ngx.ERR, "media-gateway edge: the gateway answered ", res.status, " about a URL (", reason, ")")
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)  -- as auth_request: it cannot be asked, so no media
end

-- Rule 0: state proved current within stale_after, and the last update fitted the zone.
local function state_problem(now)
    if status_dict:get("full") then
        log_once("full", "media-gateway edge state zone is full: denying every request until an update fits")
        return "state-full"
    end
    local age = now - (status_dict:get("confirmed_at") or 0)
    if age > options.stale_after then
        log_once("stale", string.format("media-gateway edge state is %.1f s old (bound %.1f s): denying",
            age, options.stale_after))
        return "state-stale"
    end
    return nil
end

function _M.access()
    -- Rule 0a: a signed URL reads. Any other method never reaches the origin, whatever the URL says.
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return deny("method-not-allowed", ngx.HTTP_NOT_ALLOWED)
    end
    local now = ngx.now()
    local problem = state_problem(now)
    if problem then
        return deny(problem)
    end
    local target = ngx.var.request_uri
    local token, path = rules.parse(target)
    if token == nil then
        return ask(path)  -- path is why
    end
    current_version()
    state.max_ahead = status_dict:get("max_ahead") or state.max_ahead
    local client = ngx.var.remote_addr
    local outcome, reason = rules.decide(token, path, client, now, state, signature_ok)
    if outcome == rules.ASK then
        return ask(reason)
    elseif outcome == rules.DENY then
        return deny(reason)
    end
    status_dict:incr("allowed", 1, 0)
    report.first_use(token, target, client, now)
end

-- What /_gateway_edge_status (JSON) and /_gateway_edge_metrics (Prometheus) both show.
local function snapshot()
    local now = ngx.now()
    local body = {
        version = status_dict:get("version"),
        age = now - (status_dict:get("confirmed_at") or 0),
        stale_after = options.stale_after,
        full = status_dict:get("full") or false,
        entries = status_dict:get("entries") or 0,
        state_free_bytes = state_dict:free_space(),
        state_capacity_bytes = state_dict:capacity(),
        decisions_free_bytes = decisions:free_space(),
        allowed = status_dict:get("allowed") or 0,
        denied = status_dict:get("denied") or 0,
        asked = status_dict:get("asked") or 0,
        feed_failures = status_dict:get("feed_failures") or 0,
        state_full_errors = status_dict:get("state_full_errors") or 0,
        redemptions_sent = status_dict:get("redemptions_sent") or 0,
        redemptions_dropped = status_dict:get("redemptions_dropped") or 0,
    }
    body.fresh = body.age <= options.stale_after and not body.full
    body.denied_by_reason, body.asked_by_reason = {}, {}
    for _, reason in ipairs(DENY_REASONS) do
        body.denied_by_reason[reason] = status_dict:get("deny:" .. reason) or 0
    end
    for _, reason in ipairs(ASK_REASONS) do
        body.asked_by_reason[reason] = status_dict:get("ask:" .. reason) or 0
    end
    return body
end

function _M.status()
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(cjson.encode(snapshot()))
end

-- The same figures in Prometheus's text format (docs/edge.md, "Monitoring"): counters end in _total.
local COUNTERS = {
    { "allowed", "Requests the edge allowed itself." },
    { "feed_failures", "Feed polls that failed (the state ages until one succeeds)." },
    { "state_full_errors", "State updates refused because the state zone was full." },
    { "redemptions_sent", "First uses reported to the gateway's audit log." },
    { "redemptions_dropped", "First uses dropped: the report queue was full or the gateway refused them." },
}
local GAUGES = {
    { "age", "state_age_seconds", "Seconds since the gateway last proved the edge's state current." },
    { "stale_after", "state_stale_after_seconds", "Older state than this denies every request." },
    { "entries", "state_entries", "Entries in the state zone." },
    { "state_free_bytes", "state_free_bytes", "Free bytes in the state zone." },
    { "state_capacity_bytes", "state_capacity_bytes", "Size of the state zone." },
    { "decisions_free_bytes", "decisions_free_bytes", "Free bytes in the decisions zone." },
}

local function metric(lines, name, kind, help, samples)
    name = "media_gateway_edge_" .. name
    lines[#lines + 1] = "# HELP " .. name .. " " .. help
    lines[#lines + 1] = "# TYPE " .. name .. " " .. kind
    for _, sample in ipairs(samples) do
        lines[#lines + 1] = name .. sample[1] .. " " .. string.format("%.17g", sample[2])
    end
end

local function by_reason(counts, reasons)
    local samples = {}
    for _, reason in ipairs(reasons) do
        samples[#samples + 1] = { '{reason="' .. reason .. '"}', counts[reason] }
    end
    return samples
end

function _M.metrics()
    local body, lines = snapshot(), {}
    for _, counter in ipairs(COUNTERS) do
        metric(lines, counter[1] .. "_total", "counter", counter[2], { { "", body[counter[1]] } })
    end
    metric(lines, "denied_total", "counter", "Requests the edge denied, by reason.",
        by_reason(body.denied_by_reason, DENY_REASONS))
    metric(lines, "asked_total", "counter", "Requests the edge asked the gateway about, by why.",
        by_reason(body.asked_by_reason, ASK_REASONS))
    for _, gauge in ipairs(GAUGES) do
        metric(lines, gauge[2], "gauge", gauge[3], { { "", body[gauge[1]] } })
    end
    metric(lines, "fresh", "gauge", "1 while the state is current and fits its zone, else 0 (every request denied).",
        { { "", body.fresh and 1 or 0 } })
    metric(lines, "state_version", "gauge", "The gateway's change-feed position the state is at (-1: none yet).",
        { { "", body.version or -1 } })
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    ngx.header["Cache-Control"] = "no-store"
    ngx.print(table.concat(lines, "\n"), "\n")
end

-- The loopback server's key: made once per nginx (the first worker to start wins; a reload keeps it), known
-- only to this nginx's workers. The loopback server attaches nginx's client certificate to what it forwards,
-- so without the key any process on the host could read the feed (HMAC secrets included) through it.
local function loopback_key()
    local key = status_dict:get("loopback_key")
    if key == nil then
        status_dict:add("loopback_key", crypto.random_hex(32))
        key = status_dict:get("loopback_key")
    end
    return key
end

-- access_by_lua in the loopback server's locations: only this nginx's own timers get through (403 otherwise).
function _M.loopback()
    local given = ngx.var.http_x_gateway_edge_key
    local key = status_dict:get("loopback_key")
    if type(given) ~= "string" or key == nil or not crypto.equal(given, key) then
        ngx.log(ngx.WARN, "media-gateway edge: refused a request to the loopback feed without this nginx's key")
        return ngx.exit(ngx.HTTP_FORBIDDEN)
    end
end

-- opts: feed_url (required), redemptions_url, token, stale_after, wait, ask_location, remember.
function _M.init_worker(opts)
    for name, value in pairs(opts) do
        options[name] = value
    end
    options.loopback_key = loopback_key()
    feed.start(options)
    report.start(options)
end

return _M
