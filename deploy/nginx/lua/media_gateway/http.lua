-- A minimal HTTP/1.0 client over cosockets, for timers (ngx.location.capture is not available there).
-- Plain HTTP to a loopback address: mutual TLS to the gateway is nginx's own proxy_pass (media-gateway-edge.conf).
local _M = {}

-- loopback_key: the per-start secret the loopback server asks for (edge.loopback()), so that only this
-- nginx's own timers, not any process on the host, reach the feed through it.
function _M.request(method, url, body, token, timeout, loopback_key)
    local host, port, path = string.match(url, "^http://([^:/]+):?(%d*)(/.*)$")
    if host == nil then
        return nil, "not an http:// URL: " .. url
    end
    local sock = ngx.socket.tcp()
    sock:settimeout(timeout * 1000)
    local ok, err = sock:connect(host, tonumber(port) or 80)
    if not ok then
        return nil, "connect: " .. err
    end
    local lines = { method .. " " .. path .. " HTTP/1.0", "Host: " .. host .. (port ~= "" and ":" .. port or "") }
    if loopback_key then
        lines[#lines + 1] = "X-Gateway-Edge-Key: " .. loopback_key
    end
    if token and token ~= "" then
        lines[#lines + 1] = "Authorization: Bearer " .. token
    end
    if body then
        lines[#lines + 1] = "Content-Type: application/json"
        lines[#lines + 1] = "Content-Length: " .. #body
    end
    ok, err = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
    if not ok then
        sock:close()
        return nil, "send: " .. err
    end
    local line
    line, err = sock:receive("*l")
    local status = line and tonumber(string.match(line, "^HTTP/%d%.%d (%d%d%d)"))
    if status == nil then
        sock:close()
        return nil, "no status line: " .. tostring(err or line)
    end
    repeat
        line, err = sock:receive("*l")
    until line == nil or line == ""
    local data
    data, err = sock:receive("*a")
    sock:close()
    if data == nil then
        return nil, "body: " .. tostring(err)
    end
    return status, data
end

return _M
