"""allow_fetch: the http(s) URL prefixes a job may fetch besides its own files.

Parsed once, the same way for spool.toml, job.json, `spoold convert --allow-fetch` and
the fetcher, which compares every URL it is asked for with these prefixes.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlPrefix:
    """One allow_fetch entry, split into the parts a URL is compared on."""

    scheme: str
    host: str
    port: int
    path: str  # percent-decoded, starts with "/"

    def covers(self, url: UrlPrefix) -> bool:
        if (url.scheme, url.host, url.port) != (self.scheme, self.host, self.port):
            return False
        if self.path.endswith("/"):
            return url.path.startswith(self.path)
        # "/img" covers /img and /img/..., not /images.
        return url.path == self.path or url.path.startswith(self.path + "/")


def split_http(url: str) -> UrlPrefix:
    """Split an http(s) URL into comparable parts, or raise ValueError saying why."""
    parsed = urllib.parse.urlsplit(url.strip())
    scheme = parsed.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("only http:// and https:// URLs can be fetched")
    if not parsed.hostname:
        raise ValueError("the URL has no host")
    if parsed.username is not None or parsed.password is not None:
        # Credentials would end up in manifests and logs.
        raise ValueError("user names and passwords in URLs are not allowed")
    port = parsed.port or DEFAULT_PORTS[scheme]  # .port raises ValueError when malformed
    raw_path = parsed.path or "/"
    if any(c in raw_path.lower() for c in ("%2f", "%5c", "\\")):
        # Servers disagree on encoded slashes; refuse rather than guess which folder it is.
        raise ValueError("encoded slashes or backslashes in the path")
    path = urllib.parse.unquote(raw_path)
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise ValueError("control characters in the path")
    if any(seg in (".", "..") for seg in path.split("/")):
        # /img/../secret would pass a string comparison with /img/ and leave it on the server.
        raise ValueError("'.' or '..' segments in the path")
    host = parsed.hostname.lower().rstrip(".")
    return UrlPrefix(scheme, host, port, path if path.startswith("/") else "/" + path)


def parse_prefix(entry: str) -> UrlPrefix:
    """Parse one allow_fetch entry; raise ValueError naming the problem."""
    parsed = urllib.parse.urlsplit(entry.strip())
    if parsed.query or parsed.fragment or entry.strip().endswith(("?", "#")):
        raise ValueError("an allow_fetch entry is a scheme, host, optional port and path only")
    return split_http(entry)
