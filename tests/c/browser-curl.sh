#!/bin/sh
# A "browser" for automated runs: $BROWSER="tests/c/browser-curl.sh %s".
# It follows the authorization server's redirects with curl, so the library's
# loopback receiver gets the callback exactly as from a person's browser
# (the test authorization server approves without a page).
exec curl -s -L -o /dev/null --max-time 30 "$1"
