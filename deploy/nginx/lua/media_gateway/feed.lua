-- The state feed (docs/edge.md): worker 0 long-polls GET /v1/edge/state and writes what it gets into the
-- state zone. Writes use safe_set only: nothing there is evicted to make room. An update that does not fit
-- marks the state "full" (every request denied, logged, counted) and the next poll asks for the full state.
local cjson = require "cjson.safe"
local b64 = require "ngx.base64"
local http = require "media_gateway.http"

local ngx = ngx
local state_dict = ngx.shared.media_gateway_edge_state
local status_dict = ngx.shared.media_gateway_edge_status

local _M = {}

local function key_value(k)
    local material = ""
    local raw = k.secret or k.public
    if type(raw) == "string" then
        material = b64.decode_base64url(raw) or ""
    end
    local not_after = type(k.not_after) == "number" and string.format("%.6f", k.not_after) or ""
    return table.concat({ k.algorithm, k.principal, not_after, k.revoked and "1" or "0", material }, "\t")
end

local function put(name, value)
    local ok, err = state_dict:safe_set(name, value)
    if not ok then
        return false, err
    end
    return true
end

-- After a full document: delete what it no longer names. Never flush first: between a flush and the writes
-- a request would find no revocations. (get_keys locks the zone: full documents are rare.)
local function drop_others(doc)
    local named = {}
    for _, p in ipairs(doc.principals or {}) do
        named["p:" .. p.id] = true
    end
    for _, k in ipairs(doc.keys or {}) do
        named["k:" .. k.kid] = true
    end
    for _, name in ipairs(state_dict:get_keys(0)) do
        if not named[name] and name ~= "revocations" then
            state_dict:delete(name)
        end
    end
end

-- Write one document; false and why when it did not fit.
local function apply(doc)
    local count = 0
    if doc.revocations ~= nil and doc.revocations ~= cjson.null then
        local ok, err = put("revocations", cjson.encode(doc.revocations))
        if not ok then
            return false, err
        end
    end
    for _, p in ipairs(doc.principals or {}) do
        local ok, err = put("p:" .. p.id, p.disabled and 1 or 0)
        if not ok then
            return false, err
        end
        count = count + 1
    end
    for _, k in ipairs(doc.keys or {}) do
        local ok, err = put("k:" .. k.kid, key_value(k))
        if not ok then
            return false, err
        end
        count = count + 1
    end
    if doc.full then
        drop_others(doc)
        status_dict:set("entries", count)
    else
        status_dict:incr("entries", 0, 0)
    end
    return true
end

local function poll(opts, since)
    local url = opts.feed_url .. "?since=" .. string.format("%d", since) .. "&wait=" .. (since > 0 and opts.wait or 0)
    local sent = ngx.now()
    local status, body = http.request("GET", url, nil, opts.token, opts.wait + 5, opts.loopback_key)
    if status ~= 200 then
        return nil, "feed answered " .. tostring(status) .. ": " .. tostring(body)
    end
    local doc = cjson.decode(body)
    if type(doc) ~= "table" or type(doc.version) ~= "number" then
        return nil, "feed sent no state document"
    end
    ngx.update_time()
    local received = ngx.now()
    -- Proved current at: when the gateway's own view was, and never before this request was sent.
    local proved = received - (tonumber(doc.age) or 0)
    return doc, nil, proved < sent and proved or math.min(proved, received)
end

local function step(opts)
    local since = status_dict:get("full") and 0 or (status_dict:get("version") or 0)
    local doc, err, proved = poll(opts, since)
    if doc == nil then
        status_dict:incr("feed_failures", 1, 0)
        ngx.log(ngx.WARN, "media-gateway edge feed: ", err)
        return false
    end
    local changed = doc.full or #(doc.keys or {}) > 0 or #(doc.principals or {}) > 0
        or (doc.revocations ~= nil and doc.revocations ~= cjson.null)
    if changed then
        local ok, why = apply(doc)
        if not ok then
            status_dict:set("full", true)
            status_dict:incr("state_full_errors", 1, 0)
            ngx.log(ngx.ERR, "media-gateway edge state zone is full (", why, "): denying every request; ",
                "raise lua_shared_dict media_gateway_edge_state and reload")
            return false
        end
    end
    status_dict:set("full", false)
    status_dict:set("max_ahead", doc.max_expiry_ahead)
    status_dict:set("version", doc.version)
    if changed then
        status_dict:incr("generation", 1, 0)
    end
    status_dict:set("confirmed_at", proved)
    return true
end

local function loop(premature, opts)
    while not premature and not ngx.worker.exiting() do
        local ok, err = pcall(step, opts)
        if not ok then
            status_dict:incr("feed_failures", 1, 0)
            ngx.log(ngx.ERR, "media-gateway edge feed: ", err)
        end
        if not (ok and err) then
            ngx.sleep(opts.retry_every or 0.1)
        end
    end
end

function _M.start(opts)
    opts.wait = opts.wait or 0.5
    if ngx.worker.id() ~= 0 then
        return
    end
    local ok, err = ngx.timer.at(0, loop, opts)
    if not ok then
        ngx.log(ngx.ERR, "media-gateway edge feed: cannot start its timer: ", err)
    end
end

return _M
