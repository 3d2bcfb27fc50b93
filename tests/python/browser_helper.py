"""A stand-in for a browser, for $BROWSER: fetch the URL and follow its redirects."""

import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    response.read()
