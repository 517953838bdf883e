"""The URL of the server a redis-py client talks to.

fairlock opens its own connection (the C library's), so a redis-py client
given as ``redis_client`` is read, never used: its connection settings
become one of the URLs the library parses.

    redis.Redis on TCP        redis://[user:pass@]host:port/db
    redis.Redis on a socket   unix://[user:pass@]/path[?db=N]
    Sentinel.master_for()     redis+sentinel://[user:pass@]h:p,.../name[/db]
    redis.RedisCluster        redis+cluster://[user:pass@]h:p,...

A client with TLS (ssl=True, an SSLConnection class, a rediss:// URL) gets
the rediss schemes, and its ssl_* settings become the URL's query
parameters of the same names (ssl_ca_certs, ssl_ca_path, ssl_certfile,
ssl_keyfile, ssl_cert_reqs, ssl_check_hostname); settings the library
cannot honour (ssl_ca_data, an encrypted key's ssl_password, OCSP,
ciphers, a minimum above TLS 1.2) raise ValueError rather than be dropped.

Other objects with ``connection_pool.connection_kwargs`` pass as
redis.Redis (the asyncio clients do).  The settings are read by duck
typing, so redis-py is not imported here and need not be installed.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

_MISSING = object()
# ssl_* settings with no counterpart in the library: refused unless unset.
_TLS_UNSUPPORTED = ("ssl_ca_data", "ssl_password", "ssl_validate_ocsp",
                    "ssl_validate_ocsp_stapled", "ssl_ocsp_context",
                    "ssl_ocsp_expected_cert", "ssl_ciphers")


def url_of(client: object) -> str:
    """The URL fairlock connects to for a redis-py client, credentials
    included (so never print it)."""
    manager = getattr(client, "nodes_manager", _MISSING)
    if manager is not _MISSING:
        return _cluster_url(manager)
    pool, kwargs = _pool_and_kwargs(client)
    tls = _uses_tls(kwargs, getattr(pool, "connection_class", None))
    query = _tls_query(kwargs) if tls else ""
    s = "s" if tls else ""
    db = _int_kwarg(kwargs, "db", 0, 0, 2**31 - 1)
    userinfo = _userinfo(kwargs)

    sentinels = getattr(pool, "sentinel_manager", _MISSING)
    if sentinels is not _MISSING:
        service = pool.service_name
        hosts = _sentinel_hosts(sentinels, tls)
        if not isinstance(service, str) or not service or "/" in service:
            raise ValueError("the Sentinel service name must be a non-empty "
                             f"str without '/', not {service!r}")
        tail = f"/{db}" if db else ""
        return f"redis{s}+sentinel://{userinfo}{hosts}/{service}{tail}{query}"

    path = kwargs.get("path")
    if path is not None:
        if not isinstance(path, str):
            raise TypeError("the redis client's socket path must be a str, "
                            f"not {type(path).__name__!r}")
        # The library's unix:// grammar: an absolute path, then ?db=N.
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"the redis client's socket path {path!r} must "
                             "be absolute and contain no '?'")
        if tls:
            raise ValueError("the redis client asks for TLS on a unix "
                             "socket, which the library does not do")
        tail = f"?db={db}" if db else ""
        return f"unix://{userinfo}{path}{tail}"
    return f"redis{s}://{userinfo}{_kwargs_endpoint(kwargs)}/{db}{query}"


def _pool_and_kwargs(client: object) -> tuple[Any, Mapping[str, Any]]:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        raise TypeError(
            "redis_client must be a redis.Redis client (with a "
            "connection_pool), a redis.RedisCluster, a URL string, or None, "
            f"not {type(client).__name__!r}")
    return pool, kwargs


def _uses_tls(kwargs: Mapping[str, Any], pool_class: object = None) -> bool:
    # redis-py says TLS by a connection class (SSLConnection, or a
    # subclass a user wrote) or by ssl=True; the core speaks none of it.
    for cls in (pool_class, kwargs.get("connection_class")):
        if "SSL" in str(getattr(cls, "__name__", "")):
            return True
    return bool(kwargs.get("ssl"))


def _tls_query(kwargs: Mapping[str, Any]) -> str:
    """'?name=value&...' of the client's ssl_* settings ('' when it has
    none); the names are redis-py's, which the library's URLs take."""
    for key in _TLS_UNSUPPORTED:
        if kwargs.get(key):
            raise ValueError(f"the redis client's {key} has no counterpart "
                             "in fairlock: leave it unset (a CA given as "
                             "data: write it to a file for ssl_ca_certs)")
    minimum = kwargs.get("ssl_min_version")
    if minimum is not None and getattr(minimum, "name", "") not in (
            "TLSv1_2", "MINIMUM_SUPPORTED", "TLSv1", "TLSv1_1", "SSLv3"):
        raise ValueError("the redis client's ssl_min_version is above TLS "
                         "1.2, fairlock's minimum: leave it unset")
    params = []
    for key in ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile"):
        value = kwargs.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            value = getattr(value, "__fspath__", lambda: value)()
        if not isinstance(value, str) or not value or "\0" in value:
            raise ValueError(f"the redis client's {key} must be a non-empty "
                             f"path, not {value!r}")
        params.append(f"{key}={quote(value, safe='/')}")
    if "ssl_cert_reqs" in kwargs:
        params.append(f"ssl_cert_reqs={_cert_reqs(kwargs['ssl_cert_reqs'])}")
    check = kwargs.get("ssl_check_hostname")
    if check is not None:
        params.append("ssl_check_hostname=" + ("true" if check else "false"))
    return "?" + "&".join(params) if params else ""


def _cert_reqs(value: object) -> str:
    # redis-py takes None or a string, and ssl.CERT_* (ints) pass too.
    if value is None:
        return "none"
    if isinstance(value, str) and value.lower() in ("none", "optional",
                                                    "required"):
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and \
            0 <= value <= 2:
        return ("none", "optional", "required")[value]
    raise ValueError("the redis client's ssl_cert_reqs must be none, "
                     f"optional or required, not {value!r}")


def _cluster_url(manager: object) -> str:
    kwargs = getattr(manager, "connection_kwargs")
    nodes = getattr(manager, "startup_nodes")
    if not isinstance(kwargs, dict) or not isinstance(nodes, dict):
        raise TypeError("the redis cluster client's nodes_manager has no "
                        "connection_kwargs or startup_nodes dict")
    tls = _uses_tls(kwargs)
    query = _tls_query(kwargs) if tls else ""
    hosts = []
    for node in nodes.values():
        host, port = node.host, node.port
        if (not isinstance(port, int) or isinstance(port, bool)
                or not 1 <= port <= 65535):
            raise ValueError("a cluster node's port must be an integer from "
                             f"1 to 65535, not {port!r}")
        hosts.append(_endpoint(host, port))
    if not hosts:
        raise ValueError("the redis cluster client has no startup nodes")
    s = "s" if tls else ""
    return f"redis{s}+cluster://{_userinfo(kwargs)}{','.join(hosts)}{query}"


def _sentinel_hosts(manager: object, tls: bool) -> str:
    hosts = []
    for sentinel in getattr(manager, "sentinels"):
        pool, kwargs = _pool_and_kwargs(sentinel)
        if (kwargs.get("password") is not None
                or kwargs.get("username") is not None):
            raise ValueError("the redis client's sentinels need a password "
                             "(sentinel_kwargs), which fairlock does not "
                             "send to sentinels")
        # rediss+sentinel:// is TLS to the sentinels and the master alike.
        if _uses_tls(kwargs, getattr(pool, "connection_class", None)) != tls:
            raise ValueError("the redis client uses TLS for the master but "
                             "not for the sentinels, or the reverse; "
                             "fairlock uses it for both or neither")
        hosts.append(_kwargs_endpoint(kwargs))
    if not hosts:
        raise ValueError("the redis client has no sentinels")
    return ",".join(hosts)


def _kwargs_endpoint(kwargs: Mapping[str, Any]) -> str:
    host = kwargs.get("host")
    if host is None:
        raise ValueError("the redis client has neither a host nor a unix "
                         "socket path in its connection_kwargs; pass url= "
                         "instead")
    return _endpoint(host, _int_kwarg(kwargs, "port", 6379, 1, 65535))


def _endpoint(host: object, port: int) -> str:
    if not isinstance(host, str):
        raise TypeError("the redis client's host must be a str, not "
                        f"{type(host).__name__!r}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _int_kwarg(kwargs: Mapping[str, Any], key: str, fallback: int,
               low: int, high: int) -> int:
    value = kwargs.get(key)
    if value is None:
        return fallback
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):  # redis-py lets port="6379" pass
        try:
            number = int(value, 10)
        except ValueError:
            pass
    if number is None or not low <= number <= high:
        raise ValueError(f"the redis client's {key} must be an integer from "
                         f"{low} to {high}, not {value!r}")
    return number


def _userinfo(kwargs: Mapping[str, Any]) -> str:
    """'user:password@', ':password@', 'user:@' or ''.  A user without a
    password authenticates with an empty one, as redis-py does."""
    provider = kwargs.get("credential_provider")
    if provider is not None:  # redis-py 4.4 and later
        creds = provider.get_credentials()
        if not isinstance(creds, tuple) or len(creds) not in (1, 2):
            raise ValueError("the redis client's credential_provider must "
                             "return (password,) or (username, password)")
        user = creds[0] if len(creds) == 2 else None
        password = creds[-1]
    else:
        user, password = kwargs.get("username"), kwargs.get("password")
    if user is None and password is None:
        return ""
    return f"{_encoded(user, 'username')}:{_encoded(password, 'password')}@"


def _encoded(value: object, what: str) -> str:
    """value percent-encoded but for RFC 3986's unreserved characters,
    which the library's URL parser decodes back byte for byte."""
    if value is None:
        return ""
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"the redis client's {what} must be a str, not "
                        f"{type(value).__name__!r}")
    if "\0" in value if isinstance(value, str) else b"\0" in value:
        raise ValueError(f"the redis client's {what} contains a NUL "
                         "character")
    return quote(value, safe="")
