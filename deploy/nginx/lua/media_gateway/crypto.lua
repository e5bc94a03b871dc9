-- Ed25519 and HMAC-SHA256 through LuaJIT's FFI to the libcrypto nginx already links (OpenSSL 3).
-- ffi.C resolves the symbols of the nginx executable and its libraries: no ffi.load, no dev package.
local ffi = require "ffi"
local C = ffi.C

ffi.cdef [[
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;
EVP_PKEY *EVP_PKEY_new_raw_public_key(int type, ENGINE *e, const unsigned char *key, size_t keylen);
void EVP_PKEY_free(EVP_PKEY *pkey);
EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
int EVP_MD_CTX_reset(EVP_MD_CTX *ctx);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, void **pctx, const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen, const unsigned char *tbs, size_t tbslen);
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d, size_t n,
                    unsigned char *md, unsigned int *md_len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
int RAND_bytes(unsigned char *buf, int num);
]]

local EVP_PKEY_ED25519 = 1087
local _M = {}

-- n random bytes from OpenSSL's CSPRNG, as hex.
function _M.random_hex(n)
    local buf = ffi.new("unsigned char[?]", n)
    assert(C.RAND_bytes(buf, n) == 1, "RAND_bytes failed")
    local raw = ffi.string(buf, n)
    return (raw:gsub(".", function(c) return string.format("%02x", string.byte(c)) end))
end

-- Whether two strings are equal, in time that does not depend on where they differ.
function _M.equal(a, b)
    return #a == #b and C.CRYPTO_memcmp(a, b, #a) == 0
end

-- Parsed public keys per worker, by their raw bytes (EVP_PKEY_new_raw_public_key costs more than a verify).
local pkeys = setmetatable({}, { __mode = "v" })
local ctx = C.EVP_MD_CTX_new()  -- one per worker, reused: verification never yields
local sha256 = C.EVP_sha256()  -- fetched once (OpenSSL 3 fetches algorithms per call otherwise)
local mac = ffi.new("unsigned char[32]")
local mac_len = ffi.new("unsigned int[1]")

local function public_key(raw)
    local key = pkeys[raw]
    if key == nil then
        local made = C.EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, raw, #raw)
        if made == nil then
            return nil
        end
        key = ffi.gc(made, C.EVP_PKEY_free)
        pkeys[raw] = key
    end
    return key
end

function _M.ed25519_verify(raw_public, message, signature)
    if #raw_public ~= 32 or #signature ~= 64 then
        return false
    end
    local key = public_key(raw_public)
    if key == nil then
        return false
    end
    -- Reset first: OpenSSL 3.0 keeps the context's key from the previous init otherwise, and would check
    -- this signature against the last key used in this worker (tests/test_nginx_edge.py, two Ed25519 keys).
    C.EVP_MD_CTX_reset(ctx)
    -- Ed25519 is one-shot: DigestVerifyInit with a NULL digest, then DigestVerify (EVP_SIGNATURE-ED25519(7)).
    if C.EVP_DigestVerifyInit(ctx, nil, nil, nil, key) ~= 1 then
        return false
    end
    return C.EVP_DigestVerify(ctx, signature, 64, message, #message) == 1
end

function _M.hmac_sha256_verify(secret, message, signature)
    if #signature ~= 32 then
        return false
    end
    if C.HMAC(sha256, secret, #secret, message, #message, mac, mac_len) == nil then
        return false
    end
    return C.CRYPTO_memcmp(mac, signature, 32) == 0  -- constant time
end

return _M
