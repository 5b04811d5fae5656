"""Redis: the store shared by every replica, in each deployment a platform team runs.

* `redis://[user:pass@]host[:6379][/db][?options]`: standalone Redis, a `redis.asyncio.Redis`
  over a `BlockingConnectionPool`; `rediss://` the same over TLS.
* `redis+sentinel://[user:pass@]h1:p1,h2:p2/service_name[?db=0][&tls=true]`: the master of
  `service_name`, `redis.asyncio.sentinel.Sentinel(...).master_for(service_name)`.
* `redis+cluster://[user:pass@]h1:p1,h2:p2[?tls=true]`: Redis Cluster,
  `redis.asyncio.cluster.RedisCluster(startup_nodes=[ClusterNode(...), ...])`.

All routing (which master, which node owns a slot, MOVED/ASK, failover discovery) is redis-py's
own; this package only configures the clients and wraps them in one `RedisStore`.

URLs. Hosts are `host:port` separated by commas, IPv6 in brackets (`[::1]:26379`); the port
defaults to 6379 (26379 for Sentinel). `user:pass@` is percent-decoded; everything up to the
last `@` is the user part, so a password may contain `@`, `/`, `?` or `#`. The user and the
password can also come from config (`store.username`, `store.password_file`), not from both.
Sentinel's own password (when the sentinels have one) comes from `store.sentinel_password_file`.
TLS: `rediss://`, or `tls=true` for Sentinel and Cluster (it applies to every connection,
sentinels included); the server certificate and its host name are always verified, against
`store.tls_ca_file` or the system's CAs; `store.tls_cert_file`/`tls_key_file` present a client
certificate. A `redis://` query string takes redis-py's own options (`?socket_timeout=0.5`,
which win over config); Sentinel takes `db` and `tls`, Cluster `tls`. Errors are ValueErrors
naming `store.url` (or the key at fault) that quote nothing of the URL but its scheme and
query parameter names: a piece of it could be a password.

Replay checks. One atomic command, `SET <key> 1 NX PX <ttl_ms>`, in one round trip: of two
replicas that see the same value at the same instant, exactly one gets OK (on a Cluster the key
lives on one master, so the same holds).

Keys. Values are hashed before they reach Redis (`store_key`: `<prefix><kind>:<sha256>`).
Standalone and Sentinel use exactly that layout (a Sentinel setup is a standalone server with
failover, and the same data must stay readable when one becomes the other). On a Cluster the
digest is also the hash tag: `<prefix><kind>:{<sha256>}`. Which keys share a tag, and why:

* Today every operation touches one key, so no operation needs two keys in one slot.
* Keys derived from the same value share its tag whatever their kind, so a future multi-key
  operation about one value (say a refresh-token binding and a record of its rotation, updated
  together in MULTI or a script) finds them in one slot, as Cluster requires.
* Keys of different values get different tags: they spread evenly over the 16384 slots, so
  over every master. Tagging by kind (`{dpop_jti}`) or by prefix would put a whole kind, or
  everything, on one master: no scaling and one hot node. For the same reason the key prefix
  may not contain `{` or `}` with Cluster (a tag in the prefix would win).

Bursts. A healthy Redis never turns a valid request into an error because many came at once
(sidecar/adapters/redis/pipeline.py):

* Warm connections: `warm_up()` (called before the sidecar listens) opens `warm_connections`
  connections (to every master, on a Cluster) and a background task pings the idle ones
  every `keepalive_seconds`, reopening any that was dropped. No request pays a connect.
* Pipelining: the replay checks and binding commands issued within one event-loop iteration
  go out as one non-transactional pipeline (on a Cluster, one per master), at most
  `warm_connections` pipelines at once. A burst of 500 requests costs a few round trips.
* Timeouts measure Redis: a read whose timer expires while the reply is already waiting
  (the loop was busy with other requests) is not timed out. Connects keep redis-py's own
  timer (a busy loop can time one out); the warm connections keep them off the request path.

Failure handling, chosen for bounded latency on the request path:

* Every wait is bounded: connect (`socket_connect_timeout`) and each command
  (`socket_timeout`, counted from the moment the command is written); Sentinel queries use
  the same bounds. A command waits for a pipeline only behind the pipelines in flight, each
  bounded in turn; the pool itself (`max_connections`, `pool_timeout`) is only waited on by
  the warm-up and `/readyz` pings.
* A timeout is never retried (a pipeline's timeout fails every command in it: they shared the
  connection): a retry would multiply the worst-case wait, and a retried
  `SET NX` whose first attempt reached Redis but whose reply was slow answers "already used",
  rejecting a fresh proof as a replay.
* A connection error is retried once, at once, on a fresh connection (redis-py's own Cluster
  retries, which would also retry timeouts, are turned off; the store retries instead). It
  almost always means the command never reached a live server (refused, a pooled socket the
  server closed on a restart or failover, a master Sentinel has just demoted). In the rare case
  where the first attempt was applied, the retry answers "already used": a legitimate proof is
  rejected, never a replay accepted.
* Recovery needs no restart: a closed pooled connection is detected when taken from the pool
  or by the retry above and reconnected; a Cluster client refreshes its slot map after a
  connection error or CLUSTERDOWN; a Sentinel pool asks the sentinels for the master on every
  new connection, and when a master refuses writes (`READONLY`: it was demoted; `NOREPLICAS`:
  with `min-replicas-to-write`, it lost its replicas, typically to a promotion) every pooled
  connection is dropped so the next commands go to whichever master Sentinel names.
* Every failure becomes StoreError, whatever raised it. Its message never contains a stored
  value or binding: transport errors are described by redis-py from the socket (host, port,
  errno); for errors the server sent only the error code (`WRONGTYPE`, `OOM`, `READONLY`...)
  is kept, since a server error text may echo command arguments; others keep their type only.

Sentinel and lost writes. Replication is asynchronous: a write acknowledged by a master that
is then replaced may be missing on the new one, and a `jti` accepted there could be accepted
again on the new master. Measured with Redis 7.0 (tests/adapters/test_redis_deployments.py):

* Crash of the master: no loss seen. Sentinel promotes only after down-after-milliseconds,
  and by then the replica has read every write the master acknowledged (they were sent to it
  with the reply). Exception: a replica that has just finished a full sync gets the stream
  only after its first acknowledgement, up to a second later.
* Planned `SENTINEL FAILOVER`: the old master stays a writable master until Sentinel
  reconfigures it, about ten seconds later, and everything written there meanwhile is lost.
  Run masters with `min-replicas-to-write 1` (and one more replica than that, for
  availability): the old master then refuses writes (`NOREPLICAS`) from the moment its replica
  is promoted, and this store moves to the new master as soon as Sentinel names it. What
  remains is the promotion instant itself: a write acknowledged in the last milliseconds
  before it may not have reached the replica (one write, a few ms before the first refusal,
  in about one run in six). Closing that too would take `WAIT` on every replay check.

The package: `urls` (the grammar of the three deployments), `options` (how to connect),
`clients` (the redis-py clients and their warm connections), `keys`, `errors`, `store`
(`RedisStore`), `pipeline` (coalesced pipelines, reads that measure Redis).
"""
