"""The services of ``bench/scale.py``: its PostgreSQL database, its broker, and the worker processes
it compares.

:class:`Database` creates the run's database on the PostgreSQL server (``pushgate_bench_scale`` by
default) and drops it at the end; a database of that name that already exists is never touched
(the run stops and says so), and ``test``, ``postgres`` and the templates are refused as names.

:class:`Broker` is the run's RabbitMQ virtual host (made with ``rabbitmqctl`` when it may, deleted
at the end if made here; else the URL's own vhost) or Redis database: it empties the ``push`` and
``sync`` queues before each phase, enqueues a delivery's start exactly as a web process in Celery
mode does (task ``pushgate.start_delivery`` on the ``push`` queue) and reads the push queue's depth
(messages waiting, not those a worker holds).

``start_celery_workers`` starts N ``celery -A pushgate_celery worker`` OS processes (each its own
process: ``--pool=solo`` by default, or ``prefork -c 1``, or ``threads -c C``) with the settings of
a worker host pointed at the emulators; ``start_embedded`` is the embedded default on the same
database (``flask --app wsgi worker``, no broker), so the two differ only by the broker. Both answer
a :class:`bench.send_gateway.Gateway` (summed CPU time, liveness, stop)."""

from __future__ import annotations

import subprocess
import sys

from bench.send_fixture import Children, Emulators, Instance, instance_env
from bench.send_gateway import Gateway, Setting, start_gateway

DEFAULT_POSTGRESQL = "postgresql+psycopg://postgres@127.0.0.1:5432/pushgate_bench_scale"
DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
VHOST = "pushgate_bench_scale"
QUEUES = ("push", "sync")
_REFUSED = {"test", "postgres", "template0", "template1"}


class Database:
    """The run's throwaway PostgreSQL database; :meth:`drop` removes it."""

    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        from bench.segments_postgresql import libpq

        self.url = url
        self.name = make_url(url).database or ""
        if not self.name or self.name in _REFUSED:
            raise SystemExit(f"--postgresql-url: name a throwaway database (not {self.name or 'none'!r})")
        self.created = False
        try:
            self._admin = psycopg.connect(libpq(url, "postgres"), autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise SystemExit(f"no PostgreSQL at {make_url(url).host}: {str(exc).strip().splitlines()[0]}") from None
        if self._admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)).fetchone():
            self._admin.close()
            raise SystemExit(
                f"database {self.name} exists (an earlier run's?): drop it (dropdb -h HOST -U USER {self.name}) "
                "or name another with --postgresql-url; this benchmark drops only what it created"
            )
        self._admin.execute(f'CREATE DATABASE "{self.name}"')
        self.created = True

    def analyse(self) -> None:
        """Fresh planner statistics once the subscriptions are in (as autovacuum would, later)."""
        import psycopg

        from bench.segments_postgresql import libpq

        with psycopg.connect(libpq(self.url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def drop(self) -> None:
        if self.created:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        self._admin.close()


class Broker:
    """The run's broker: a RabbitMQ vhost of its own (or the URL's), or a Redis database."""

    def __init__(self, url: str) -> None:
        from kombu.utils.url import url_to_parts

        self.redis = url.startswith("redis")
        self.made_vhost = False
        if not self.redis and url_to_parts(url).path in (None, "", "/"):
            # The default vhost "/" is everyone's: use one of the bench's own when rabbitmqctl may make it.
            made = subprocess.run(["rabbitmqctl", "add_vhost", VHOST], capture_output=True, check=False)
            if made.returncode == 0 or b"already exists" in made.stdout + made.stderr:
                subprocess.run(
                    ["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
                    capture_output=True,
                    check=True,
                )
                self.made_vhost = made.returncode == 0
                url = "/".join(url.split("/")[:3]) + "/" + VHOST
        self.url = url
        self._check()

    @property
    def shown(self) -> str:
        """The URL without its password."""
        from kombu.utils.url import maybe_sanitize_url

        return str(maybe_sanitize_url(self.url))

    def _check(self) -> None:
        from kombu.connection import Connection

        try:
            with Connection(self.url, connect_timeout=3) as connection:  # type: ignore[no-untyped-call]
                connection.ensure_connection(max_retries=1)
        except Exception as exc:
            raise SystemExit(f"no broker at {self.shown}: {exc}") from None

    def empty(self) -> None:
        """Nothing left in the queues by an earlier phase or run."""
        if self.redis:
            import redis

            redis.Redis.from_url(self.url).delete(*QUEUES)
            return
        from kombu.connection import Connection

        with Connection(self.url) as connection:  # type: ignore[no-untyped-call]
            channel = connection.default_channel
            for queue in QUEUES:
                channel.queue_declare(queue=queue, durable=True, auto_delete=False)
                channel.queue_purge(queue)

    def enqueue_start(self, delivery_id: int) -> None:
        """What a web process in Celery mode does once it created a delivery (gateway.broker.enqueue_start)."""
        from celery import Celery

        from gateway.broker import PUSH_QUEUE, START_DELIVERY

        producer = Celery("pushgate-bench", broker=self.url, set_as_current=False)
        producer.conf.update(task_serializer="json")
        try:
            producer.send_task(START_DELIVERY, args=[delivery_id], queue=PUSH_QUEUE)
        finally:
            producer.close()

    def depth_reader(self) -> Depth:
        return Depth(self)

    def close(self) -> None:
        if self.redis:  # the queues and kombu's bindings: nothing of this run left in that database
            import redis

            client = redis.Redis.from_url(self.url)
            client.delete(*QUEUES, *client.keys("_kombu.binding*"))
            client.close()
        if self.made_vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", VHOST], capture_output=True, check=False)


class Depth:
    """Reads the push queue's depth over one open connection (sampled every second)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        if broker.redis:
            import redis

            self._redis = redis.Redis.from_url(broker.url)
        else:
            from kombu.connection import Connection

            self._connection = Connection(broker.url)  # type: ignore[no-untyped-call]
            self._channel = self._connection.default_channel

    def __call__(self) -> int:
        if self.broker.redis:
            return int(self._redis.llen("push"))
        return int(self._channel.queue_declare(queue="push", passive=True).message_count)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self.broker.redis:
            self._redis.close()
        else:
            self._connection.release()  # type: ignore[no-untyped-call]


def _env(instance: Instance, emulators: Emulators) -> dict[str, str]:
    env = instance_env(instance, emulators)
    env["PUSHGATE_REDIS_URL"] = ""  # no rate_per_second in this bench: nothing to share across workers
    return env


def start_celery_workers(
    children: Children,
    instance: Instance,
    emulators: Emulators,
    broker: Broker,
    count: int,
    in_flight: int,
    pool: str,
    concurrency: int,
    label: str,
) -> Gateway:
    """``count`` Celery worker OS processes on the push queue, each ready when this returns. Pool
    ``solo``: one task at a time in the process itself; ``prefork``: one child process (``-c 1``);
    ``threads``: ``concurrency`` tasks side by side in the one process, sharing its event loop (as
    the embedded worker sends PUSHGATE_WORKER_CONCURRENCY batches side by side)."""
    env = _env(instance, emulators)
    env.update(PUSHGATE_BROKER_URL=broker.url, PUSHGATE_CELERY_BATCHES_IN_FLIGHT=str(in_flight))
    processes = []
    for n in range(count):
        name = f"{label}-w{n}"
        argv = [sys.executable, "-m", "celery", "-A", "pushgate_celery", "worker", "-Q", "push"]
        argv += ["-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        argv += {"solo": ["--pool=solo"], "prefork": ["--pool=prefork", "-c", "1"]}.get(
            pool, ["--pool=threads", "-c", str(concurrency)]
        )
        processes.append(children.start(name, argv, env))
    for process in processes:
        process.wait_for(r"\bready\.", timeout=90)
    return Gateway(processes)


def start_embedded(children: Children, instance: Instance, emulators: Emulators) -> Gateway:
    """The embedded default (``flask --app wsgi worker``, no broker) on the same database."""
    return start_gateway(children, instance, emulators, Setting())


def prefork_cpu(gateway: Gateway) -> float:
    """CPU seconds of the worker processes and their children (prefork's pool process)."""
    from bench.send_fixture import proc_cpu

    total = 0.0
    for process in gateway.processes:
        total += proc_cpu(process.pid)
        try:
            children = open(f"/proc/{process.pid}/task/{process.pid}/children").read().split()  # noqa: SIM115
        except OSError:
            children = []
        for child in children:
            try:
                total += proc_cpu(int(child))
            except OSError:
                continue
    return total
