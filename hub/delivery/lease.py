"""Which delivery worker holds a claimed row, and rescuing the rows of a dead one at once.

A `manage.py qcluster` process registers itself as a WorkerCluster (`start_cluster`) before
it forks its workers, which inherit `CLUSTER_ID`: every claim they make carries it as the
prefix of the rows' claim token (`new_claim_token`). The cluster's main process beats every
HUB_WORKER_HEARTBEAT_SECONDS. A cluster is dead when its process is gone from this machine
(same host name and PID namespace: checked with kill(pid, 0)) or when it has not beaten for
HUB_WORKER_LEASE_SECONDS (another machine). `rescue_lost` hands a dead cluster's `sending`
rows back to the retry path, due at once: after a crash (kill -9, OOM, power cut) the
restarted worker finds them in its first second instead of after HUB_STUCK_SENDING_SECONDS.

Rows claimed outside a cluster (the API's `sync=1`, the admin's test email: a web process)
carry a plain random token and are still rescued by the sweeper's HUB_STUCK_SENDING_SECONDS.
A message may repeat only if it was on the wire when its worker died (at-least-once)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ConnectionSlot, DestinationSlot, SendLog, WorkerCluster
from .attempt import abandon_rows
from .transport import pool

log = logging.getLogger(__name__)

# Set in a qcluster's main process before it forks (hub/management/commands/qcluster.py).
CLUSTER_ID = ""
TOKEN_LENGTH = 32  # SendLog.claim_token's max_length


class WorkerStopping(SystemExit):
    """Raised in a worker process by SIGTERM (hub.management.commands.qcluster): the drain
    hands its rows back (the one on the wire due at once, the untried ones queued) and the
    worker exits. A SystemExit, so django-q2's worker loop does not swallow it."""


def new_claim_token() -> str:
    """A fresh claim token; inside a cluster it starts with the cluster's id."""
    random = uuid.uuid4().hex
    if not CLUSTER_ID:
        return random
    return f"{CLUSTER_ID}-{random}"[:TOKEN_LENGTH]


# The pool's connection slots carry the cluster's id too (hub.delivery.slots), so a dead
# cluster's connections stop counting when its rows are rescued.
pool.new_holder = new_claim_token


def this_host() -> str:
    """The host name and PID namespace: pids are comparable only within one namespace (two
    containers may share a host name, never a PID namespace)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "?"
    return f"{socket.gethostname()} {namespace}"[:255]


def start_cluster() -> str:
    """Register this process as a running cluster; returns (and sets) CLUSTER_ID."""
    global CLUSTER_ID
    now = timezone.now()
    CLUSTER_ID = uuid.uuid4().hex[:12]
    WorkerCluster.objects.create(id=CLUSTER_ID, host=this_host(), pid=os.getpid(), started_at=now, beat_at=now)
    return CLUSTER_ID


def beat() -> None:
    """This cluster is alive (its main process calls this every HUB_WORKER_HEARTBEAT_SECONDS)."""
    now = timezone.now()
    if not WorkerCluster.objects.filter(pk=CLUSTER_ID).update(beat_at=now):
        # Another process judged us dead (we did not beat for the whole lease: a stopped
        # VM, a database down) and handed our rows back: they may go out twice.
        log.warning("worker cluster %s was taken for dead and its rows rescued; registering again", CLUSTER_ID)
        WorkerCluster.objects.create(id=CLUSTER_ID, host=this_host(), pid=os.getpid(), started_at=now, beat_at=now)


def stop_cluster() -> int:
    """This cluster has stopped (its workers have exited): hand back whatever rows it still
    holds and unregister. Returns the number of rows handed back."""
    rescued = _rescue(CLUSTER_ID, "the worker delivering this message stopped")
    WorkerCluster.objects.filter(pk=CLUSTER_ID).delete()
    return rescued


def is_dead(cluster: WorkerCluster, host: str, now) -> bool:
    if cluster.beat_at < now - timedelta(seconds=settings.HUB_WORKER_LEASE_SECONDS):
        return True
    if cluster.host != host or cluster.id == CLUSTER_ID:
        return False
    try:
        os.kill(cluster.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has that pid now: rely on the lease
    return False


def rescue_lost() -> int:
    """Hand back the rows of every dead cluster, due at once; returns how many."""
    now, host = timezone.now(), this_host()
    rescued = 0
    for cluster in WorkerCluster.objects.exclude(pk=CLUSTER_ID) if CLUSTER_ID else WorkerCluster.objects.all():
        if is_dead(cluster, host, now):
            count = _rescue(cluster.id, "the worker delivering this message was lost")
            WorkerCluster.objects.filter(pk=cluster.id).delete()
            log.warning("worker cluster %s (%s pid %s) is gone: %d message(s) it held are due again",
                        cluster.id, cluster.host, cluster.pid, count)
            rescued += count
    return rescued


def _rescue(cluster_id: str, error: str) -> int:
    with transaction.atomic():
        rows = list(SendLog.objects.filter(status=SendLog.Status.SENDING, claim_token__startswith=f"{cluster_id}-")
                    .order_by("id"))
        # Like the sweeper's rescue: the lost try counts as an attempt, so a message that
        # kills its worker every time ends `failed` by the retry schedule.
        abandon_rows(rows, error, retry_now=True)
        # Its SMTP connections are gone too: their slots count no more (hub.delivery.slots).
        ConnectionSlot.objects.filter(holder__startswith=f"{cluster_id}-").update(holder="", expires_at=timezone.now())
        DestinationSlot.objects.filter(holder__startswith=f"{cluster_id}-").update(holder="", expires_at=timezone.now())
    return len(rows)
