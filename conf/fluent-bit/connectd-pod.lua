-- connectd-pod.lua: Fluent Bit Lua filter: "pod" and "tls" as the JSON text BigQuery's streaming insert wants
--
-- The bigquery output streams rows with tabledata.insertAll, which takes
-- a JSON column's value as a JSON-encoded string (Google's own example
-- sends "labels":"{\"property\":...}"; an object is refused with "This
-- field: pod is not a record").  The json parser has made "pod" (and
-- "tls") a map: this filter writes it back as JSON text.  Every other
-- field is left as it is.  Lua has no null in tables: a member whose value is null is
-- left out of the text (Fluent Bit drops it before Lua sees it), which a
-- JSON_VALUE() query reads as null all the same.  Lua 5.1 / LuaJIT, as
-- Fluent Bit embeds.

local function quote(s)
    return '"' .. s:gsub('[%z\1-\31"\\]', function(c)
        if c == '"' then return '\\"' end
        if c == '\\' then return '\\\\' end
        if c == '\n' then return '\\n' end
        if c == '\r' then return '\\r' end
        if c == '\t' then return '\\t' end
        return string.format('\\u%04x', c:byte())
    end) .. '"'
end

-- a table with the keys 1..n and no other is an array (as Fluent Bit
-- itself decides when it turns a Lua table back into a record)
local function is_array(t)
    local n = 0
    for k in pairs(t) do
        if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
            return false
        end
        n = n + 1
    end
    return n > 0 and n == #t
end

local encode

-- Lua cannot tell an empty array from an empty map: the members of "tls"
-- that are arrays stay arrays when empty (an ALPN list the client did not send)
local empty_arrays = { alpn = true, versions = true }

local function number(v)
    if v ~= v or v == math.huge or v == -math.huge then
        return "null"
    end
    if v % 1 == 0 and v >= -2^53 and v <= 2^53 then
        return string.format("%.0f", v)
    end
    return string.format("%.17g", v)
end

encode = function(v)
    local t = type(v)
    if t == "string" then
        return quote(v)
    elseif t == "number" then
        return number(v)
    elseif t == "boolean" then
        return v and "true" or "false"
    elseif t == "table" then
        local out = {}
        if is_array(v) then
            for i = 1, #v do
                out[i] = encode(v[i])
            end
            return "[" .. table.concat(out, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do
            keys[#keys + 1] = tostring(k)
        end
        table.sort(keys)
        for i, k in ipairs(keys) do
            local val = v[k]
            if val == nil then
                val = v[tonumber(k)]
            end
            if type(val) == "table" and next(val) == nil and empty_arrays[k] then
                out[i] = quote(k) .. ":[]"
            else
                out[i] = quote(k) .. ":" .. encode(val)
            end
        end
        return "{" .. table.concat(out, ",") .. "}"
    end
    return "null"
end

-- The JSON columns: "pod" and "tls" (the TLS hello an object, or null).
local json_columns = { "pod", "tls" }

-- The filter: code 2 keeps the record's time (the parser's ts).
function connectd_pod_json(tag, timestamp, record)
    local changed = false
    for _, k in ipairs(json_columns) do
        if type(record[k]) == "table" then
            record[k] = encode(record[k])
            changed = true
        end
    end
    if not changed then
        return 0, timestamp, record
    end
    return 2, timestamp, record
end
