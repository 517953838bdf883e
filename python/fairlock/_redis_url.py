"""The URL of the server a redis-py client talks to.

fairlock opens its own connection (the C library speaks to Redis through
hiredis), so a redis-py client given as ``redis_client`` is read, never
used: its connection settings become one of the URLs the library parses.

    redis.Redis on TCP        redis://[user:pass@]host:port/db
    redis.Redis on a socket   unix://[user:pass@]/path[?db=N]
    Sentinel.master_for()     redis+sentinel://[user:pass@]h:p,.../name[/db]
    redis.RedisCluster        redis+cluster://[user:pass@]h:p,...

Other objects with ``connection_pool.connection_kwargs`` pass as
redis.Redis (the asyncio clients do).  The settings are read by duck
typing, so redis-py is not imported here and need not be installed.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

_MISSING = object()
_TLS_REFUSED = ("the redis client uses TLS (rediss://), which fairlock does "
                "not support")


def url_of(client: object) -> str:
    """The URL fairlock connects to for a redis-py client, credentials
    included (so never print it)."""
    manager = getattr(client, "nodes_manager", _MISSING)
    if manager is not _MISSING:
        return _cluster_url(manager)
    pool, kwargs = _pool_and_kwargs(client)
    if _uses_tls(kwargs, getattr(pool, "connection_class", None)):
        raise ValueError(_TLS_REFUSED)
    db = _int_kwarg(kwargs, "db", 0, 0, 2**31 - 1)
    userinfo = _userinfo(kwargs)

    sentinels = getattr(pool, "sentinel_manager", _MISSING)
    if sentinels is not _MISSING:
        service = pool.service_name
        hosts = _sentinel_hosts(sentinels)
        if not isinstance(service, str) or not service or "/" in service:
            raise ValueError("the Sentinel service name must be a non-empty "
                             f"str without '/', not {service!r}")
        tail = f"/{db}" if db else ""
        return f"redis+sentinel://{userinfo}{hosts}/{service}{tail}"

    path = kwargs.get("path")
    if path is not None:
        if not isinstance(path, str):
            raise TypeError("the redis client's socket path must be a str, "
                            f"not {type(path).__name__!r}")
        # The library's unix:// grammar: an absolute path, then ?db=N.
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"the redis client's socket path {path!r} must "
                             "be absolute and contain no '?'")
        tail = f"?db={db}" if db else ""
        return f"unix://{userinfo}{path}{tail}"
    return f"redis://{userinfo}{_kwargs_endpoint(kwargs)}/{db}"


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


def _cluster_url(manager: object) -> str:
    kwargs = getattr(manager, "connection_kwargs")
    nodes = getattr(manager, "startup_nodes")
    if not isinstance(kwargs, dict) or not isinstance(nodes, dict):
        raise TypeError("the redis cluster client's nodes_manager has no "
                        "connection_kwargs or startup_nodes dict")
    if _uses_tls(kwargs):
        raise ValueError(_TLS_REFUSED)
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
    return f"redis+cluster://{_userinfo(kwargs)}{','.join(hosts)}"


def _sentinel_hosts(manager: object) -> str:
    hosts = []
    for sentinel in getattr(manager, "sentinels"):
        _, kwargs = _pool_and_kwargs(sentinel)
        if (kwargs.get("password") is not None
                or kwargs.get("username") is not None):
            raise ValueError("the redis client's sentinels need a password "
                             "(sentinel_kwargs), which fairlock does not "
                             "send to sentinels")
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
