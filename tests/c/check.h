/* A tiny test harness: CHECK(cond, ...) prints "ok" or "not ok" with a
 * description, and the program ends with a "RESULT passed=N failed=M" line
 * that tests/c/run.sh adds up. Thread-safe counters. */
#ifndef MCP_OAUTH_TEST_CHECK_H
#define MCP_OAUTH_TEST_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_oauth.h"

static atomic_int check_passed;
static atomic_int check_failed;

__attribute__((unused)) static void check_report(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ok) {
        atomic_fetch_add(&check_passed, 1);
        printf("ok - ");
    } else {
        atomic_fetch_add(&check_failed, 1);
        printf("not ok - %s:%d: ", file, line);
    }
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

#define CHECK(cond, ...) check_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A failed call's code and error object: the code is `want` and the error
 * object (when asked for) has that kind and a message. Frees the error. */
__attribute__((unused)) static void check_failure(const char *what, mcp_oauth_result got, mcp_oauth_result want, mcp_oauth_error *err,
                          int want_error_object, const char *file, int line)
{
    check_report(got == want, file, line, "%s: result %s (want %s)", what, mcp_oauth_result_name(got),
                 mcp_oauth_result_name(want));
    if (want_error_object) {
        const char *kind = err ? mcp_oauth_error_kind(err) : NULL;
        const char *msg = err ? mcp_oauth_error_message(err) : NULL;
        check_report(err && mcp_oauth_error_code(err) == want && kind && !strcmp(kind, mcp_oauth_result_name(want)) &&
                         msg && *msg,
                     file, line, "%s: error object kind=%s message=%s", what, kind ? kind : "(none)",
                     msg ? msg : "(none)");
    }
    mcp_oauth_error_free(err);
}

/* `call` runs before `err` is read. */
#define CHECK_FAILURE(what, call, want, err)                                 \
    do {                                                                     \
        mcp_oauth_result check_rc_ = (call);                                 \
        check_failure(what, check_rc_, want, err, 1, __FILE__, __LINE__);    \
    } while (0)
#define CHECK_CODE(what, call, want) check_failure(what, call, want, NULL, 0, __FILE__, __LINE__)

__attribute__((unused)) static int check_finish(void)
{
    int p = atomic_load(&check_passed), f = atomic_load(&check_failed);
    printf("RESULT passed=%d failed=%d\n", p, f);
    return f == 0 ? 0 : 1;
}

__attribute__((unused)) static const char *need_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "%s is not set (tests/c/run.sh sets it)\n", name);
        exit(2);
    }
    return v;
}

#endif
