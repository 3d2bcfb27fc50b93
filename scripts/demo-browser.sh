#!/bin/sh
# The demo's stand-in for a person at a browser: it opens the authorization URL
# and follows the authorization server's redirects, as a browser does after the
# person clicks "allow". The local authorization server approves at once, so the
# last redirect lands on the client's loopback receiver. Used as $BROWSER.
exec curl --silent --show-error --location --max-redirs 10 --output /dev/null "$1"
