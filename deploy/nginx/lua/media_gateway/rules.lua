-- The rules of docs/edge.md for one native URL: "allow", or "deny" with the gateway's reason, or "ask"
-- (the gateway decides: anything here not implemented, or refused by a rule the gateway names better).
-- Pure: the state and the signature memory come in as functions (media_gateway.edge), time as `now`.
-- The reference is the gateway's verifier: gateway/signing/{verification,paths,path_tokens}.py and
-- gateway/signing/dialects/native.py. Any difference is a bug here (tests/test_nginx_edge.py).
local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local concat, sort = table.concat, table.sort
local b64 = require "ngx.base64"

local _M = {}

local ALLOW, DENY, ASK = "allow", "deny", "ask"
_M.ALLOW, _M.DENY, _M.ASK = ALLOW, DENY, ASK

local function set_of(text)
    local set = {}
    for i = 1, #text do
        set[byte(text, i)] = true
    end
    return set
end

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local UNRESERVED = set_of(ALNUM .. "-._~")
local LITERAL = set_of(ALNUM .. "-._~!$&'()*+,=:@")       -- a canonical path holds these as they are
local QUERY_SAFE = set_of(ALNUM .. "-._~!$'()*+,;:@/?")   -- paths._QUERY_SAFE
local HEX_UPPER = set_of("0123456789ABCDEF")
local HEX_ANY = set_of("0123456789ABCDEFabcdef")
local B64URL = set_of(ALNUM .. "-_")
local SLASH, PERCENT, DOT, SPACE = 47, 37, 46, 32
local PARAMS = { "gw_exp", "gw_iat", "gw_nbf", "gw_ip", "gw_pfx", "gw_kid", "gw_sig" }
local KNOWN = {}
for _, name in ipairs(PARAMS) do
    KNOWN[name] = true
end
local MAX_INT = 2 ^ 53

-- paths.path_problem: nil when canonical, ASK when not (the gateway names the rule), or when the path holds
-- an escape of a byte >= 0x80 (UTF-8 rules the edge does not carry).
local function path_gate(path)
    local n = #path
    if n == 0 or byte(path, 1) ~= SLASH then
        return ASK
    end
    local i, seg_start, only_dots = 2, 2, true
    while i <= n + 1 do
        local c = byte(path, i)
        if c == nil or c == SLASH then
            if i == seg_start then
                if c ~= nil then
                    return ASK  -- an empty segment ('//'); a trailing '/' is fine
                end
            elseif only_dots then
                return ASK  -- '.', '..', '. .' in any spelling
            end
            seg_start, only_dots = i + 1, true
            i = i + 1
        elseif c == PERCENT then
            local h1, h2 = byte(path, i + 1), byte(path, i + 2)
            if not (h1 and h2 and HEX_UPPER[h1] and HEX_UPPER[h2]) then
                return ASK
            end
            local value = tonumber(sub(path, i + 1, i + 2), 16)
            if value >= 0x80 then
                return ASK
            end
            if value < 0x20 or value == 0x7F or LITERAL[value] or value == SLASH or value == 92
                or value == 59 or value == PERCENT then
                return ASK
            end
            if value ~= SPACE then
                only_dots = false
            end
            i = i + 3
        elseif LITERAL[c] then
            if c ~= DOT then
                only_dots = false
            end
            i = i + 1
        else
            return ASK
        end
    end
    return nil
end
_M.path_gate = path_gate

-- Raw name=value pairs in order (paths.split_query).
local function split_query(query)
    local pairs_ = {}
    for part in string.gmatch(query, "[^&]+") do
        local eq = find(part, "=", 1, true)
        if eq then
            pairs_[#pairs_ + 1] = { sub(part, 1, eq - 1), sub(part, eq + 1) }
        else
            pairs_[#pairs_ + 1] = { part, "" }
        end
    end
    return pairs_
end

local function add_param(params, name, value)
    if not KNOWN[name] or params[name] ~= nil then
        return false
    end
    params[name] = value
    params[#params + 1] = name
    return true
end

local function has_required(params)
    return params.gw_exp and params.gw_iat and params.gw_kid and params.gw_sig
end

local function params_text(params)
    local out = {}
    for _, name in ipairs(PARAMS) do
        if params[name] ~= nil then
            out[#out + 1] = name .. "=" .. params[name]
        end
    end
    return concat(out, "&")
end

-- native.token_params: the one spelling of a path token's segment; nil when malformed.
local function token_params(segment)
    for i = 1, #segment do
        if not B64URL[byte(segment, i)] then
            return nil
        end
    end
    local text = b64.decode_base64url(segment)
    if text == nil or b64.encode_base64url(text) ~= segment or find(text, "[\128-\255]") then
        return nil
    end
    local params = {}
    for _, pair in ipairs(split_query(text)) do
        if not add_param(params, pair[1], pair[2]) then
            return nil
        end
    end
    if not has_required(params) or params.gw_pfx == nil or params_text(params) ~= text then
        return nil
    end
    return params
end

-- _common.decimal + native._int_param: digits, no leading zero, at most 16, below 2^53.
local function decimal(text)
    if text == nil or #text == 0 or #text > 16 or find(text, "[^0-9]") or (#text > 1 and byte(text, 1) == 48) then
        return nil
    end
    local value = tonumber(text)
    if value >= MAX_INT then
        return nil
    end
    return value
end

-- native._prefix_param, for prefixes the edge handles: only %26 %2B %3D escapes (of '&', '+', '='),
-- the rest literal; the decoded prefix a canonical path ending in '/'. nil: ask.
local PFX_ESCAPES = { ["%26"] = "&", ["%2B"] = "+", ["%3D"] = "=" }
local function prefix_param(raw)
    local decoded = string.gsub(raw, "%%..", function(e) return PFX_ESCAPES[e] or "\0" end)
    if find(decoded, "\0", 1, true) or find(raw, "[&+=]") then
        return nil
    end
    if find(decoded, "%%") or byte(decoded, #decoded) ~= SLASH or path_gate(decoded) ~= nil then
        return nil
    end
    return decoded
end

-- paths._canonical_query_text for ASCII text; nil on a malformed escape.
local function query_text(text)
    local out, i, n = {}, 1, #text
    while i <= n do
        local c = byte(text, i)
        if c == PERCENT then
            local h1, h2 = byte(text, i + 1), byte(text, i + 2)
            if not (h1 and h2 and HEX_ANY[h1] and HEX_ANY[h2]) then
                return nil
            end
            local value = tonumber(sub(text, i + 1, i + 2), 16)
            out[#out + 1] = UNRESERVED[value] and char(value) or string.format("%%%02X", value)
            i = i + 3
        else
            out[#out + 1] = QUERY_SAFE[c] and char(c) or string.format("%%%02X", c)
            i = i + 1
        end
    end
    return concat(out)
end

local function by_name_then_value(a, b)
    if a[1] ~= b[1] then
        return a[1] < b[1]
    end
    return a[2] < b[2]
end

local function canonical_query(others)
    local canonical = {}
    for i, pair in ipairs(others) do
        local name, value = query_text(pair[1]), query_text(pair[2])
        if name == nil or value == nil then
            return nil
        end
        canonical[i] = { name, value }
    end
    sort(canonical, by_name_then_value)
    local out = {}
    for i, pair in ipairs(canonical) do
        out[i] = pair[1] .. "=" .. pair[2]
    end
    return concat(out, "&")
end

-- An IPv4 network in the one spelling the signer writes, as (base, mask size); nil: ask.
local function ipv4(text)
    local a, b, c, d = string.match(text, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    if not a then
        return nil
    end
    local value = 0
    for _, octet in ipairs({ a, b, c, d }) do
        local n = decimal(octet)
        if n == nil or n > 255 then
            return nil
        end
        value = value * 256 + n
    end
    return value
end

local function ip_matches(network, client)
    local address, bits = string.match(network, "^([%d.]+)/(%d+)$")
    local base, size = address and ipv4(address), decimal(bits)
    local ip = ipv4(client)
    if base == nil or size == nil or size > 32 or ip == nil then
        return nil  -- IPv6, or not a network the signer writes: ask
    end
    local block = 2 ^ (32 - size)
    if base % block ~= 0 then
        return nil
    end
    return ip - ip % block == base
end

-- view._newest: the newest revocation of `path` itself or of a directory above it.
local function newest(path, at_path, at_dir)
    local found = at_path(path)
    for i = #path, 1, -1 do
        if byte(path, i) == SLASH then
            local at = at_dir(sub(path, 1, i))
            if at ~= nil and (found == nil or at > found) then
                found = at
            end
        end
    end
    return found
end
_M.newest = newest

-- Parsed tokens per worker, by the token's text (the query, or the path token's segment): a player asks for
-- every segment under one prefix token, so each is parsed once. Parsing depends on nothing but that text.
local parsed = require("resty.lrucache").new(10000)

-- The claims of a token's parameters, or nil and why the gateway is asked.
local function claims(params, others)
    local token = { params = params, others = others }
    token.expires, token.issued_at = decimal(params.gw_exp), decimal(params.gw_iat)
    if token.expires == nil or token.issued_at == nil or token.issued_at > token.expires then
        return nil, "token"
    end
    if params.gw_nbf ~= nil then
        token.starts = decimal(params.gw_nbf)
        if token.starts == nil then
            return nil, "token"
        end
    end
    if params.gw_pfx ~= nil then
        token.prefix = prefix_param(params.gw_pfx)
        if token.prefix == nil then
            return nil, "prefix"
        end
    end
    return token
end

local function query_token(query)
    local params, others = {}, {}
    for _, pair in ipairs(split_query(query)) do
        if sub(pair[1], 1, 3) == "gw_" then
            if not add_param(params, pair[1], pair[2]) then
                return nil, "token"
            end
        else
            others[#others + 1] = pair
        end
    end
    if #params == 0 then
        return nil, "no-token"  -- no native token: another dialect's URL
    elseif not has_required(params) then
        return nil, "token"
    end
    return claims(params, others)
end

local function path_token(segment)
    local params = token_params(segment)
    if params == nil then
        return nil, "token"
    end
    return claims(params, {})
end

local function cached(key, parse, text)
    local found = parsed:get(key)
    if found == nil then
        local why
        found, why = parse(text)
        found = found or why  -- a refusal is remembered too: the same text is refused the same way
        parsed:set(key, found)
    end
    if type(found) == "string" then
        return nil, found
    end
    return found
end

-- The token of a request target and the path its claims are about (the resource path), or nil and why the
-- gateway is asked: "target" (not printable ASCII, or a '#'), "path" (not canonical, or UTF-8 escapes),
-- "no-token" (another dialect), "token" (malformed), "prefix" (a gw_pfx spelling the edge does not handle).
function _M.parse(target)
    if byte(target, 1) ~= SLASH or find(target, "[^\33-\126]") or find(target, "#", 1, true) then
        return nil, "target"
    end
    local q = find(target, "?", 1, true)
    local path = q and sub(target, 1, q - 1) or target
    local query = q and sub(target, q + 1) or ""
    if path_gate(path) ~= nil then
        return nil, "path"
    end
    if sub(path, 1, 4) ~= "/_t/" then
        local token, why = cached("q" .. query, query_token, query)
        return token, token and path or why
    end
    local stop = find(path, "/", 5, true)
    if stop == nil or stop == 5 or sub(path, stop, stop + 3) == "/_t/" then
        return nil, "token"
    end
    if query ~= "" and (sub(query, 1, 3) == "gw_" or find(query, "&gw_", 1, true)) then
        return nil, "token"  -- a path token and a query token in one URL
    end
    local segment = sub(path, 5, stop - 1)
    local token, why = cached("t" .. segment, path_token, segment)
    return token, token and sub(path, stop) or why
end

-- What a first use is counted by: the token alone for a prefix token, else the whole URL.
function _M.reuse(token, target)
    if not token.prefix then
        return target
    end
    if token.reuse == nil then
        local sent = {}
        for i, name in ipairs(token.params) do
            sent[i] = name .. "=" .. token.params[name]
        end
        token.reuse = concat(sent, "&")
    end
    return token.reuse
end

function _M.string_to_sign(token, path, algorithm)
    local p = token.params
    local scope, query
    if token.prefix then
        scope, query = "prefix:" .. token.prefix, ""
    else
        scope, query = "path:" .. path, canonical_query(token.others)
        if query == nil then
            return nil
        end
    end
    return concat({ "GW2", algorithm, p.gw_kid, p.gw_iat, p.gw_exp, p.gw_nbf or "", p.gw_ip or "", scope, query }, "\n")
end

function _M.signature(text)
    if #text == 0 or find(text, "[^%w_-]") or #text % 4 == 1 then
        return nil
    end
    local raw = b64.decode_base64url(text)
    if raw == nil or b64.encode_base64url(raw) ~= text then
        return nil
    end
    return raw
end

-- Rules 5-9 of docs/edge.md for `token` presented for the resource `path`. `state`: key(kid),
-- principal_disabled(id), links(path), grants(principal, path), max_ahead; `signature_ok(token, path, key)`:
-- rule 6 (remembered or checked). Returns outcome, reason.
function _M.decide(token, path, client_ip, now, state, signature_ok)
    local key = state.key(token.params.gw_kid)
    if key == nil then
        return ASK, "unknown-key"
    end
    if key.revoked then
        return DENY, "key-revoked"
    end
    if key.not_after and now >= key.not_after then
        return DENY, "key-expired"
    end
    if state.principal_disabled(key.principal) then
        return DENY, "principal-disabled"
    end
    local ok = signature_ok(token, path, key)
    if ok == nil then
        return ASK, "no-material"
    elseif not ok then
        return DENY, "bad-signature"
    end
    if now >= token.expires then
        return DENY, "expired"
    end
    if token.starts and now < token.starts then
        return DENY, "not-yet-valid"
    end
    if token.prefix and sub(path, 1, #token.prefix) ~= token.prefix then
        return DENY, "outside-prefix"
    end
    if token.params.gw_ip then
        local matches = ip_matches(token.params.gw_ip, client_ip)
        if matches == nil then
            return ASK, "ip"
        elseif not matches then
            return DENY, "wrong-ip"
        end
    end
    if token.expires > now + state.max_ahead then
        return DENY, "expiry-too-far"
    end
    local revoked = state.links(path)
    if revoked ~= nil and token.issued_at <= revoked then
        return DENY, "links-revoked"
    end
    revoked = state.grants(key.principal, path)
    if revoked ~= nil and token.issued_at <= revoked then
        return DENY, "grant-revoked"
    end
    return ALLOW
end

return _M
