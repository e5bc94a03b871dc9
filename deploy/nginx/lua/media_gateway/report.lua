-- Redemptions (docs/edge.md): the first allow of a token from a client network is marked in the decisions
-- zone (so one worker reports it), queued in this worker, and sent to POST /v1/edge/redemptions every
-- 200 ms, at most 500 a request. Write-behind and bounded: what is lost is counted (redemptions_dropped).
local cjson = require "cjson.safe"
local http = require "media_gateway.http"
local rules = require "media_gateway.rules"

local ngx = ngx
local decisions = ngx.shared.media_gateway_edge_decisions
local status_dict = ngx.shared.media_gateway_edge_status

local _M = {}
local queue, head, tail = {}, 1, 0  -- this worker's unsent first uses
local MAX_QUEUED, BATCH, MAX_ATTEMPTS = 10000, 500, 5
local attempts = 0

local function dropped(count, why)
    status_dict:incr("redemptions_dropped", count, 0)
    ngx.log(ngx.ERR, "media-gateway edge: ", count, " redemption report(s) lost: ", why)
end

-- The network a first use is counted per (gateway.netaddr.mask_ip): IPv4 /24, others as they are.
local function network(client)
    return string.match(client, "^(%d+%.%d+%.%d+)%.%d+$") or client
end

-- Marks this worker already saw, so a repeat costs a table lookup rather than a digest and a zone write.
local seen = require("resty.lrucache").new(10000)

function _M.first_use(token, target, client, now)
    local key = rules.reuse(token, target) .. "\0" .. network(client)
    if seen:get(key) then
        return
    end
    local ttl = token.expires - now
    if ttl <= 0 then
        return
    end
    seen:set(key, true, ttl)
    if not decisions:add("r:" .. ngx.sha1_bin(key), true, ttl) then
        return  -- reported already (by any worker), or the mark is still there
    end
    if tail - head + 1 >= MAX_QUEUED then
        return dropped(1, "the queue is full (the gateway has not taken reports for a while)")
    end
    tail = tail + 1
    queue[tail] = { url = target, client_ip = client, at = now }
end

local sending = false  -- a slow send must not overlap the next tick's

local function flush(premature, opts)
    if tail < head or sending then
        return
    end
    sending = true
    local ok, err = pcall(_M.send, opts)
    sending = false
    if not ok then
        ngx.log(ngx.ERR, "media-gateway edge: redemption report: ", err)
    end
end

function _M.send(opts)
    local last = math.min(tail, head + BATCH - 1)
    local batch = {}
    for i = head, last do
        batch[#batch + 1] = queue[i]
    end
    local status, body = http.request("POST", opts.redemptions_url, cjson.encode({ redemptions = batch }),
        opts.token, 5, opts.loopback_key)
    if status == 200 then
        for i = head, last do
            queue[i] = nil
        end
        head, attempts = last + 1, 0
        status_dict:incr("redemptions_sent", #batch, 0)
        return
    end
    attempts = attempts + 1
    ngx.log(ngx.WARN, "media-gateway edge: redemption report failed (", tostring(status), " ", tostring(body), ")")
    if attempts >= MAX_ATTEMPTS then
        for i = head, last do
            queue[i] = nil
        end
        head, attempts = last + 1, 0
        dropped(#batch, "sent " .. MAX_ATTEMPTS .. " times without success")
    end
end

function _M.start(opts)
    if not opts.redemptions_url then
        return
    end
    local ok, err = ngx.timer.every(opts.report_every or 0.2, flush, opts)
    if not ok then
        ngx.log(ngx.ERR, "media-gateway edge: cannot start the redemption timer: ", err)
    end
end

function _M.pending()
    return tail - head + 1
end

return _M
