#!/usr/bin/env python3
"""Generate the NULL-argument and invalid-UTF-8 cases of the C API from its header.

Reads include/mcp_oauth.h, finds every `mcp_oauth_*` function prototype and
writes a C file (included by test_misuse.c) with one case per pointer
parameter of every function: the call with NULL in that place and valid
arguments elsewhere, and the result the header documents for it. It also
writes one case per `const char *` parameter with invalid UTF-8 there.

A function added to the header is covered at the next build without
anything written by hand; a parameter type the generator does not know, or
a prototype it cannot parse, stops the build with a message saying which.

    gen_null_cases.py include/mcp_oauth.h OUTPUT.h
"""

import re
import sys

# Where NULL is documented as allowed: (function, parameter) -> (why, the
# result to expect). "*" as the function means every function.
ALLOWED_NULL = {
    ("*", "err_out"): ("the error output is optional", "OK_OR_FAILURE"),
    ("*", "userdata"): ("userdata is passed to the callbacks as is", "OK_OR_FAILURE"),
    ("*", "operation_out"): ("the operation handle of a _start function is optional", "OK_OR_FAILURE"),
    ("mcp_oauth_config_builder_set_static_client", "client_secret"): ("a public client has no secret", "OK"),
    ("mcp_oauth_config_builder_set_static_client", "auth_method"): ("chosen from the server's metadata when NULL", "OK"),
    ("mcp_oauth_config_builder_set_static_client", "issuer"): ("the issuer pin is optional", "OK"),
    ("mcp_oauth_config_builder_set_private_key_jwt", "key_id"): ("the JWT `kid` is optional", "OK"),
    ("mcp_oauth_config_builder_set_storage_file", "directory"): ("NULL is the default directory", "OK"),
    ("mcp_oauth_config_builder_set_storage_keyring", "service"): ("NULL is the default service name", "OK"),
    ("mcp_oauth_config_builder_set_loopback_handler", "redirect_uri"): ("NULL is http://127.0.0.1:0/callback", "OK"),
    ("mcp_oauth_config_builder_set_resource_parameter", "value"): ("must be NULL with SEND (the mode used)", "OK"),
    ("mcp_oauth_config_builder_set_identity_assertion", "idp_client_id"): ("optional client authentication at the IdP", "OK"),
    ("mcp_oauth_config_builder_set_identity_assertion", "idp_client_secret"): ("optional client authentication at the IdP", "OK"),
    ("mcp_oauth_config_builder_set_identity_assertion", "id_token"): ("may come from the ID token callbacks", "OK"),
    ("mcp_oauth_config_builder_set_workload_identity", "jwt"): ("exactly one of jwt and jwt_file", "OK"),
    ("mcp_oauth_config_builder_set_workload_identity", "jwt_file"): ("exactly one of jwt and jwt_file", "OK"),
    ("mcp_oauth_provider_handle_response", "sent_authorization"): ("the request carried no Authorization", "OK_OR_FAILURE"),
    ("mcp_oauth_provider_handle_response_async", "sent_authorization"): ("the request carried no Authorization", "OK"),
    ("mcp_oauth_provider_handle_response_start", "sent_authorization"): ("the request carried no Authorization", "OK"),
    ("mcp_oauth_provider_logout", "revoked_out"): ("the revocation outcome is optional", "OK_OR_FAILURE"),
    ("mcp_oauth_http_request_body", "len_out"): ("the length output is optional", "VALUE"),
    ("mcp_oauth_http_request_fail", "message"): ("the host's message is optional", "OK"),
    ("mcp_oauth_authorization_fail", "message"): ("the host's message is optional", "OK"),
    ("mcp_oauth_signature_fail", "message"): ("the host's message is optional", "OK"),
    ("mcp_oauth_set_log_callback", "callback"): ("a NULL callback turns logging off", "OK"),
}

# Functions that are not called at all, with the reason.
SKIPPED = {
    "mcp_oauth_versioned_init": "a C++ template in the header, not a function of the library",
}

# Functions that take back (free) a callback-scoped handle when it is given.
CONSUMES = {
    "mcp_oauth_http_request_respond": "request",
    "mcp_oauth_http_request_fail": "request",
    "mcp_oauth_authorization_complete": "authorization",
    "mcp_oauth_authorization_fail": "authorization",
    "mcp_oauth_signature_complete": "signature",
    "mcp_oauth_signature_fail": "signature",
}

# Strings that are not checked for UTF-8 (documented), with what to expect.
UTF8_ACCEPTED = {
    ("mcp_oauth_http_request_respond", "header_names"): "the server's bytes, as for handle_response",
    ("mcp_oauth_http_request_respond", "header_values"): "the server's bytes, as for handle_response",
    ("mcp_oauth_http_request_fail", "message"): "the host's message is read with replacement characters",
    ("mcp_oauth_authorization_fail", "message"): "the host's message is read with replacement characters",
    ("mcp_oauth_provider_handle_response", "header_names"): "the server's bytes are read with replacement characters",
    ("mcp_oauth_provider_handle_response", "header_values"): "the server's bytes are read with replacement characters",
    ("mcp_oauth_provider_handle_response_async", "header_names"): "the server's bytes, as for handle_response",
    ("mcp_oauth_provider_handle_response_async", "header_values"): "the server's bytes, as for handle_response",
    ("mcp_oauth_provider_handle_response_start", "header_names"): "the server's bytes, as for handle_response",
    ("mcp_oauth_provider_handle_response_start", "header_values"): "the server's bytes, as for handle_response",
}

# A valid value for each parameter type: (C expression, context) where the
# context names a handle that only exists inside a library callback
# ("answer", "request", "authorization", "signature") or is None.
# `fx` is the test's fixture (struct fixture *).
POINTER_TYPES = {
    "struct mcp_oauth_config_builder *": ("fx_builder()", None),
    "const struct mcp_oauth_provider *": ("fx->provider", None),
    "struct mcp_oauth_provider *": (None, None),  # only the _free, NULL alone
    "struct mcp_oauth_provider **": ("&out_provider", None),
    "const struct mcp_oauth_headers *": ("fx->headers", None),
    "struct mcp_oauth_headers *": (None, None),
    "struct mcp_oauth_headers **": ("&out_headers", None),
    "const struct mcp_oauth_error *": ("fx->error", None),
    "struct mcp_oauth_error *": (None, None),
    "struct mcp_oauth_error **": ("&out_error", None),
    "const struct mcp_oauth_operation *": ("fx->operation", None),
    "struct mcp_oauth_operation *": (None, None),
    "struct mcp_oauth_operation **": ("&out_operation", None),
    "struct mcp_oauth_answer *": ("fx->answer", "answer"),
    "const struct mcp_oauth_http_request *": ("fx->request", "request"),
    "struct mcp_oauth_http_request *": ("fx->request", "request"),
    "const struct mcp_oauth_authorization *": ("fx->authorization", "authorization"),
    "struct mcp_oauth_authorization *": ("fx->authorization", "authorization"),
    "struct mcp_oauth_signature *": ("fx->signature", "signature"),
    "const struct mcp_oauth_storage_callbacks *": ("&fx->storage_callbacks", None),
    "const struct mcp_oauth_handler_callbacks *": ("&fx->handler_callbacks", None),
    "const struct mcp_oauth_transport_callbacks *": ("&fx->transport_callbacks", None),
    "const struct mcp_oauth_token_store *": ("&fx->token_store", None),
    "const struct mcp_oauth_authorization_callbacks *": ("&fx->authorization_callbacks", None),
    "const struct mcp_oauth_log_options *": ("&fx->log_options", None),
    "const struct mcp_oauth_device_code_callbacks *": ("&fx->device_code_callbacks", None),
    "const struct mcp_oauth_signer_callbacks *": ("&fx->signer_callbacks", None),
    "const struct mcp_oauth_jwt_callbacks *": ("&fx->jwt_callbacks", None),
    "const char *": ("STRING", None),  # by name, below
    "const char *const *": ("ARRAY", None),  # by name, below
    "const uint8_t *": ("fx->bytes", None),
    "bool *": ("&out_bool", None),
    "uint64_t *": ("&out_u64", None),
    "int64_t *": ("&out_i64", None),
    "size_t *": ("&out_size", None),
    "void *": ("fx", None),
    "mcp_oauth_completion": ("fx_completion", None),
    "mcp_oauth_headers_completion": ("fx_headers_completion", None),
    "mcp_oauth_log_callback": ("fx_log_callback", None),
}

# Valid strings by parameter name (the default is "x").
STRINGS = {
    "method": '"POST"',
    "url": "fx->url",
    "server_url": '"https://mcp.example.com/mcp"',
    "redirect_uri": '"http://127.0.0.1:0/callback"',
    "redirect": '"http://127.0.0.1:9/cb?code=c&state=s"',
    "json": '"{}"',
    "text": '"{}"',
    "client_id": '"client"',
    "auth_method": '"none"',
    "issuer": '"https://as.example.com"',
    "private_key_pem": "FX_P256_KEY",
    "algorithm": '"ES256"',
    "key_id": '"k1"',
    "scope": '"mcp"',
    "version": '"2025-06-18"',
    "directory": "fx->directory",
    "service": '"mcp-oauth-client-null-tests"',
    "urls": '"redis://127.0.0.1:1"',
    "prefix": '"p"',
    "name": '"n"',
    "value": '"v"',
    "idp_token_endpoint": '"https://idp.example.com/token"',
    "jwt": '"a.b.c"',
    "jwt_file": "fx->jwt_file",
    "message": '"m"',
    "sent_authorization": '"Bearer abc"',
}

# Non-pointer arguments by name (the default is 0).
SCALARS = {
    "status": "401",
    "header_count": "1",
    "key_len": "32",
    "length": "64",
    "body_len": "2",
    "timeout_ms": "1000",
    "wait_ms": "0",
    "max_level": "MCP_OAUTH_LOG_LEVEL_OFF",
    "enabled": "false",
    "allow": "false",
    "index": "0",
    "code": "1",
    "failure": "MCP_OAUTH_NETWORK_FAILURE_OTHER",
}

# What a function returns for a NULL it does not allow, by return type.
NULL_RESULT = {
    "mcp_oauth_result": "NULL_PARAMETER",
    "const char *": "NULL",
    "const uint8_t *": "NULL",
    "struct mcp_oauth_error *": "NULL",
    "struct mcp_oauth_config_builder *": "NULL",
    "size_t": "ZERO",
    "uint64_t": "ZERO",
    "uint16_t": "ZERO",
    "bool": "FALSE",
    "mcp_oauth_network_failure": "ZERO",
    "void": "NONE",
}


def fail(msg):
    sys.stderr.write(f"gen_null_cases.py: {msg}\n")
    sys.exit(1)


def norm(t):
    t = re.sub(r"\s+", " ", t.strip())
    t = re.sub(r"\s*\*\s*", " *", t).replace("* *", "**").replace(" **", " **")
    return t.replace(" *const *", " *const *")


def parse(header):
    """[(name, return type, [(type, name)], doc)] for every prototype."""
    # Drop preprocessor lines and the C++ template.
    text = header
    protos = []
    pattern = re.compile(
        r"(/\*\*(?:(?!\*/).)*\*/)?\s*\n([A-Za-z_][^;{}()#/]*?)\b(mcp_oauth_[a-z0-9_]+)\(([^;{}]*?)\);",
        re.S,
    )
    seen = set()
    for m in pattern.finditer(text):
        doc, ret, name, params = m.group(1) or "", m.group(2), m.group(3), m.group(4)
        if ret.strip().startswith("typedef") or "(*" in params:
            continue
        ret = norm(ret)
        plist = []
        if params.strip() != "void":
            for p in params.split(","):
                p = norm(p)
                pm = re.fullmatch(r"(.+?)\s*\b([a-z_][a-z0-9_]*)", p)
                if not pm:
                    fail(f"cannot parse parameter `{p}` of {name}")
                ptype = norm(pm.group(1))
                plist.append((ptype, pm.group(2)))
        protos.append((name, ret, plist, doc))
        seen.add(name)
    # Every name declared with a call syntax must have been parsed.
    declared = set(re.findall(r"^[A-Za-z_][^;()\n]*\b(mcp_oauth_[a-z0-9_]+)\(", text, re.M))
    missing = declared - seen - set(SKIPPED)
    if missing:
        fail("cannot parse the prototypes of " + ", ".join(sorted(missing)))
    if len(protos) < 50:
        fail(f"only {len(protos)} prototypes found: the header's layout changed")
    return protos


def is_pointer(ptype):
    return "*" in ptype or ptype in ("mcp_oauth_completion", "mcp_oauth_headers_completion", "mcp_oauth_log_callback")


def arg_value(fn, ptype, pname, params):
    if ptype not in POINTER_TYPES:
        if is_pointer(ptype):
            fail(f"{fn}: no valid value known for parameter `{pname}` of type `{ptype}`: add it to POINTER_TYPES")
        if pname == "mode" and "resource_parameter" in fn:
            return "MCP_OAUTH_RESOURCE_PARAMETER_SEND", None
        return SCALARS.get(pname, "0"), None
    expr, ctx = POINTER_TYPES[ptype]
    if expr == "STRING":
        if fn.endswith("set_resource_parameter") and pname == "value":
            return "NULL", None  # documented: NULL with SEND
        return STRINGS.get(pname, '"x"'), None
    if expr == "ARRAY":
        return ("fx->names" if "name" in pname else "fx->values"), None
    if expr == "fx->bytes" and fn.endswith("redis_encryption_key"):
        return "fx->key", None
    return expr, ctx


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def documented_errors(doc):
    return set(re.findall(r"MCP_OAUTH_RESULT_([A-Z0-9_]+)", doc))


def emit(protos, out):
    cases = []  # (label, kind, context, consumes, ret, expect, body lines, check_name)
    for fn, ret, params, doc in protos:
        if fn in SKIPPED:
            continue
        if ret not in NULL_RESULT:
            fail(f"{fn}: return type `{ret}` unknown: add it to NULL_RESULT")
        for t, n in params:
            if is_pointer(t) and t not in POINTER_TYPES:
                fail(f"{fn}: no valid value known for parameter `{n}` of type `{t}`: add it to POINTER_TYPES")
        errors = documented_errors(doc)
        for kind in ("null", "utf8", "empty"):
            for i, (ptype, pname) in enumerate(params):
                if kind == "null" and not is_pointer(ptype):
                    continue
                if kind in ("utf8", "empty") and ptype not in ("const char *", "const char *const *"):
                    continue
                args, contexts = [], set()
                for j, (t, n) in enumerate(params):
                    if j == i:
                        if kind == "null":
                            args.append("NULL")
                        elif kind == "utf8":
                            args.append("FX_BAD_UTF8" if t == "const char *" else "fx->bad_utf8_array")
                        else:
                            args.append('""' if t == "const char *" else "fx->empty_array")
                        continue
                    v, ctx = arg_value(fn, t, n, params)
                    if v is None:
                        fail(f"{fn}: no valid value for `{n}` ({t}) with `{pname}` NULL")
                    args.append(v)
                    if ctx:
                        contexts.add(ctx)
                if len(contexts) > 1:
                    fail(f"{fn}: needs two callback-scoped handles at once")
                ctx = contexts.pop() if contexts else None
                consumes = CONSUMES.get(fn) == ctx and ctx is not None
                if kind == "null":
                    allowed = ALLOWED_NULL.get((fn, pname)) or ALLOWED_NULL.get(("*", pname))
                    if allowed:
                        reason, expect = allowed
                        if expect == "OK_OR_FAILURE" and ret != "mcp_oauth_result":
                            expect = "VALUE"
                    else:
                        reason, expect = "", NULL_RESULT[ret]
                        if ret == "mcp_oauth_result" and "NULL_PARAMETER" not in errors and fn not in (
                            "mcp_oauth_error_code",
                        ):
                            # Every fallible function documents it in the
                            # conventions; say which ones do not repeat it.
                            reason = "NULL_PARAMETER from the header's conventions"
                elif kind == "empty":
                    # An empty string is a value like any other: whatever
                    # the function makes of it, never a crash or a panic
                    # (and no "yes" from a predicate).
                    reason = "an empty string"
                    expect = {"mcp_oauth_result": "NOT_PANIC", "bool": "FALSE"}.get(ret, "VALUE")
                else:
                    if (fn, pname) in UTF8_ACCEPTED:
                        reason, expect = UTF8_ACCEPTED[(fn, pname)], "OK_OR_FAILURE"
                    elif ret == "mcp_oauth_result" and "INVALID_UTF8" in errors:
                        reason, expect = "", "INVALID_UTF8"
                    elif ret == "mcp_oauth_result":
                        reason, expect = "INVALID_UTF8 from the header's conventions", "INVALID_UTF8"
                    elif ret == "bool":
                        reason, expect = "a predicate is false on bad input", "FALSE"
                    else:
                        reason, expect = "", "VALUE"
                tag = {"null": "NULL", "utf8": "BAD_UTF8", "empty": "EMPTY"}[kind]
                label = f"{fn}({', '.join(tag + ' ' + n if j == i else n for j, (t, n) in enumerate(params))})"
                has_err = any(n == "err_out" for j, (t, n) in enumerate(params) if j != i)
                cases.append((label, kind, ctx, consumes, fn, ret, expect, args, pname, reason, has_err))
    w = out.write
    w("/* GENERATED by tests/c/gen_null_cases.py from include/mcp_oauth.h. Do not edit. */\n")
    for idx, (label, kind, ctx, consumes, fn, ret, expect, args, pname, reason, has_err) in enumerate(cases):
        w(f"static void gen_case_{idx}(struct fixture *fx)\n{{\n")
        w("    mcp_oauth_provider *out_provider = NULL; mcp_oauth_headers *out_headers = NULL;\n")
        w("    mcp_oauth_error *out_error = NULL; mcp_oauth_operation *out_operation = NULL;\n")
        w("    bool out_bool = false; uint64_t out_u64 = 0; int64_t out_i64 = 0; size_t out_size = 0;\n")
        w("    (void)out_provider; (void)out_headers; (void)out_error; (void)out_operation;\n")
        w("    (void)out_bool; (void)out_u64; (void)out_i64; (void)out_size; (void)fx;\n")
        call = f"{fn}({', '.join(args)})"
        if ret == "void":
            w(f"    {call};\n    int got = 0;\n")
        elif ret == "mcp_oauth_result":
            w(f"    long got = (long){call};\n")
        elif ret == "bool":
            w(f"    long got = {call} ? 1 : 0;\n")
        elif "*" in ret:
            w(f"    const void *ptr = (const void *){call};\n    long got = ptr != NULL;\n")
        else:
            w(f"    long got = (long){call};\n")
        w(f"    fx_check(fx, {c_string(label)}, {c_string(kind)}, {c_string(expect)}, {c_string(pname)}, {1 if has_err else 0}, got, out_error);\n")
        w("    fx_cleanup(fx, out_provider, out_headers, out_error, out_operation);\n")
        if "fx_builder()" in args and not fn.endswith("_build"):
            w("    fx_builder_done(fx);\n")
        w("}\n\n")
    w("static const struct gen_case gen_cases[] = {\n")
    for idx, (label, kind, ctx, consumes, fn, ret, expect, args, pname, reason, has_err) in enumerate(cases):
        w(f"    {{gen_case_{idx}, {c_string(label)}, {c_string(kind)}, {c_string(ctx or '')}, {1 if consumes else 0}, {c_string(reason)}}},\n")
    w("};\n")
    w(f"#define GEN_CASES {len(cases)}\n")
    w(f"#define GEN_FUNCTIONS {len([p for p in protos if p[0] not in SKIPPED])}\n")
    w(f"#define GEN_NULL_CASES {sum(1 for c in cases if c[1] == 'null')}\n")
    w(f"#define GEN_UTF8_CASES {sum(1 for c in cases if c[1] == 'utf8')}\n")
    w(f"#define GEN_EMPTY_CASES {sum(1 for c in cases if c[1] == 'empty')}\n")


def main():
    if len(sys.argv) != 3:
        fail("usage: gen_null_cases.py HEADER OUTPUT")
    with open(sys.argv[1], encoding="utf-8") as f:
        protos = parse(f.read())
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        emit(protos, out)
    import os

    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
