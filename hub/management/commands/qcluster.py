"""`manage.py qcluster`: django-q2's cluster, run so that it stops on any SIGTERM and a
crash costs seconds (issue 17, items 2 and 3). It replaces django-q2's command of the same
name (the hub app is listed before django_q in INSTALLED_APPS; options are the same).

Stopping. django-q2's main process stops the cluster inside its signal handler; its
sentinel, pusher, monitor and workers die on SIGTERM (SIG_DFL). A SIGTERM to the whole process
group (systemd's default KillMode, `kill -TERM -- -PGID`, bin/run) killed the sentinel
under the main process's handler, which then waited for ever; a second SIGTERM re-entered the
handler and deadlocked on a multiprocessing lock. Here the handler only records the signal;
this command's loop does the stopping, once:
- a group SIGTERM: the workers get it too and raise WorkerStopping (installed at spawn,
  below), which hands their claimed rows back, and exit; the main process waits for them;
- a SIGTERM or SIGINT to the main process alone: the cluster stops the django-q2 way (no
  new tasks, running ones finish) for HUB_WORKER_STOP_GRACE_SECONDS, then its processes
  get SIGTERM (rows handed back), and SIGKILL if still there HUB_WORKER_STOP_GRACE_SECONDS
  later; rows they held are rescued before this process exits.

Recovery. The cluster registers itself (hub.delivery.lease) before it forks, so its rows
carry its id; at start it rescues the rows of dead clusters and queues a drain, and while it
runs it beats (and looks for dead clusters) every HUB_WORKER_HEARTBEAT_SECONDS.

Logs: django-q2 translates its log lines into the active language; the worker's are English
like the rest of the hub's logs."""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import signal
import threading
import time

from django.conf import settings
from django.db import connections
from django.utils import translation
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QClusterCommand
from django_q.signals import post_spawn

from hub.delivery import lease, outbox, transport

log = logging.getLogger("hub.worker")

POLL = 0.2  # seconds between two looks at the signal flag and the cluster's processes


class Command(QClusterCommand):
    help = "Runs the delivery worker (a django-q2 cluster) until SIGTERM or SIGINT."

    def handle(self, *args, **options):
        translation.activate("en")  # inherited by the forked processes: English logs
        settings.SECRET_KEY  # noqa: B018 - django-q2 signs tasks with it: fail now if unset
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        signals: list[int] = []

        def record(signum, frame) -> None:
            signals.append(signum)  # nothing else here: a handler must be safe to re-enter

        lease.start_cluster()
        # The processes about to be forked must not share this process's database connection:
        # on MariaDB a child closing its copy ends the parent's session ("server has gone
        # away"). Each process opens its own on first use.
        connections.close_all()
        post_spawn.connect(_worker_spawned, dispatch_uid="hub.worker.spawned")
        cluster = Cluster()  # installs django-q2's handlers: replaced right after
        signal.signal(signal.SIGTERM, record)
        signal.signal(signal.SIGINT, record)
        log.info("worker cluster %s starting (pid %s)", lease.CLUSTER_ID, os.getpid())
        stopped_early = False
        try:
            try:
                cluster.start()
            except RuntimeError:
                if not signals:
                    raise
                stopped_early = True  # a group SIGTERM during the start killed the sentinel
            _members()
            if not stopped_early and not signals:
                _recover()
            if not options.get("run_once"):
                _run_until_signal(cluster, signals)
        finally:
            _stop(cluster)

def _worker_spawned(sender, proc_name, **kwargs) -> None:
    """In each new worker process: SIGTERM stops it cleanly (see WorkerStopping), and its
    SMTP sessions' connection slots are freed when it ends (`_worker_ending`)."""
    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the hand-back
        raise lease.WorkerStopping(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # multiprocessing runs a process's finalizers when its target returns or raises (not
    # after SIGKILL: then the slots' leases run out, or the cluster's rescue frees them).
    multiprocessing.util.Finalize(None, _worker_ending, exitpriority=10)


def _worker_ending() -> None:
    """A worker process ends (django-q2 replaces it after Q_RECYCLE tasks, or it stops): its
    connection slots are freed now. Before, a replaced worker's slots stayed taken for their
    lease, and transactional mail waited up to 5 s behind them (docs/campaigns.md)."""
    try:
        transport.pool.release_all()
    except Exception:
        log.exception("could not free this worker's SMTP connection slots; their leases will expire")
    finally:
        connections.close_all()

def _recover() -> None:
    """At start: rows of dead clusters are due at once, and a drain looks at the outbox now
    (the one its predecessor was asked for may have died with it)."""
    try:
        rescued = lease.rescue_lost()
        outbox.request_drain()
        log.info("worker cluster %s running; %d message(s) of lost workers due again", lease.CLUSTER_ID, rescued)
    except Exception:
        log.exception("could not look for lost rows at start; the sweeper will")

def _run_until_signal(cluster: Cluster, signals: list[int]) -> None:
    next_beat = 0.0
    while not signals:
        if not cluster.sentinel.is_alive():
            raise RuntimeError(f"the cluster's sentinel exited with {cluster.sentinel.exitcode}")
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + settings.HUB_WORKER_HEARTBEAT_SECONDS
            _members()  # remember the cluster's processes while their parents are alive
            try:
                lease.beat()
                if lease.rescue_lost():
                    outbox.wake_workers()
            except Exception:
                log.exception("worker heartbeat failed; trying again")
        time.sleep(POLL)
    log.info("worker cluster %s got %s: stopping", lease.CLUSTER_ID, signal.Signals(signals[0]).name)

def _ask_to_stop(cluster: Cluster, timeout: float) -> None:
    """Set django-q2's stop event, waiting at most `timeout`. A multiprocessing Event's set()
    waits until every process sleeping on it has woken; one that a group signal killed while
    it waited never wakes, and set() would block for ever (seen: Ctrl-C on bin/run left the
    qcluster hung in Event.set). A thread bounds it; the TERM/KILL steps after it do not
    depend on it, and a thread still blocked there is a daemon that does not hold up exit."""
    setter = threading.Thread(target=cluster.stop_event.set, name="stop-event", daemon=True)
    setter.start()
    setter.join(timeout)
    if setter.is_alive():
        log.warning("worker cluster %s: the stop event could not be set within %.0f s (a process died "
                    "waiting on it); stopping the processes by signal", lease.CLUSTER_ID, timeout)


def _stop(cluster: Cluster) -> None:
    """Stop the cluster's processes (bounded, see the module docstring), then hand back
    what they still held and unregister."""
    grace = settings.HUB_WORKER_STOP_GRACE_SECONDS
    if cluster.sentinel is not None and cluster.sentinel.is_alive():
        _ask_to_stop(cluster, grace)  # django-q2's own stop: pusher first, then each worker after its task
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        members = _members()
        if sig is not None:
            log.warning("worker cluster %s: %d process(es) still running, sending %s", lease.CLUSTER_ID,
                        len(members), signal.Signals(sig).name)
            for pid in members:
                _signal(pid, sig)
        deadline = time.monotonic() + grace
        while members and time.monotonic() < deadline:
            time.sleep(POLL)
            members = _members()
        if not members:
            break
    if cluster.sentinel is not None:
        cluster.sentinel.join(timeout=1)  # reap it
    try:
        handed_back = lease.stop_cluster()
        log.info("worker cluster %s stopped; %d message(s) handed back", lease.CLUSTER_ID, handed_back)
    except Exception:
        log.exception("could not unregister worker cluster %s; the next worker will rescue its rows",
                      lease.CLUSTER_ID)

_known: set[int] = set()  # the cluster's processes seen so far (they outlive a killed sentinel)

def _members() -> set[int]:
    """The cluster's processes still running: below this one, or seen there before (a worker
    whose sentinel died is re-parented), or in this process's group when it leads one."""
    me = os.getpid()
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (_state, ppid, _pgrp) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = [me]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in _known:
                _known.add(child)
                todo.append(child)
    if os.getpgrp() == me:
        _known.update(pid for pid, (_state, _ppid, pgrp) in table.items() if pgrp == me and pid != me)
    return {pid for pid in _known if pid in table and table[pid][0] != b"Z"}

def _process_table() -> dict[int, tuple[bytes, int, int]]:
    """pid -> (state, ppid, process group), from Linux's /proc (empty elsewhere)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        table[int(entry)] = (fields[0], int(fields[1]), int(fields[2]))
    return table

def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
