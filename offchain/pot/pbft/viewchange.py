"""View change (Castro & Liskov §4.4, §4.5.2) with suspects (BFT-SMaRt's first timeout).

A replica that times out does not leave its view alone: it sends a signed ``Suspect`` and
relays what it waits for; it starts a view change once 2f+1 replicas suspect the view, or once
f+1 others are in later views, and relays the 2f+1 suspects so that every correct replica
follows. The new primary collects 2f+1 VIEW-CHANGEs and sends the NEW-VIEW with the
pre-prepares they imply (``compute_new_view``, which every replica recomputes to check it).
"""

from __future__ import annotations

from .config import ReplicaStatus
from .effects import Suspected, ViewChanged, Send
from .messages import (NewView, PrePrepare, Prepare, PreparedCert, Request, Suspect, SuspectCert, ViewChange,
                       batch_digest, request_id)
from .storage import ViewState
from .votes import VoteSet

NORMAL, VIEW_CHANGE = ReplicaStatus.NORMAL, ReplicaStatus.VIEW_CHANGE


class ViewChangeHandlers:
    """The replica's view-change handlers (mixed into ``Replica``)."""

    def _on_view_timeout(self, now: float) -> None:
        if self.status is VIEW_CHANGE:
            # The NEW-VIEW did not come in time; the next view once 2f+1 agree (§4.5.2: the
            # timer doubles with every view that fails, see _check_suspects).
            self._suspect(now, f"no new-view from primary {self.primary} in time")
            self._set_timer("view", now + self._timeout())
        elif self.pending:
            if self._timed_rid in self.pending:
                # BFT-SMaRt's first timeout: relay what we wait for to every replica (the
                # primary may never have had it; backups that lack it start their timers).
                for rid in list(self.pending)[:self.cfg.batch_max]:
                    self._out.append(Send(None, Request(self.pending[rid])))
                self._suspect(now, "request not executed in time")
                self._set_timer("view", now + self._timeout())
            else:
                self._arm_view_timer(now)  # its request executed meanwhile (state transfer)

    def _suspect(self, now: float, why: str) -> None:
        """We want to leave our view; we do once 2f+1 replicas do (see Suspect)."""
        if self.id not in self.suspects:
            s = Suspect(self.view, self.id)
            s = Suspect(s.view, self.id, self.signer.sign(s.signable()))
            self.suspects.add(self.id, s)
            self._out.append(Suspected(self.view, why))
            self._out.append(Send(None, s))
        self._check_suspects(now)

    def _on_suspect(self, m: Suspect, sender: int, now: float) -> None:
        # Only for our view: one for a later view comes again from its author while it waits.
        if self._add_suspect(m, sender):
            self._check_suspects(now)

    def _on_suspect_cert(self, m: SuspectCert, sender: int, now: float) -> None:
        if m.view != self.view or len(m.suspects) > self.cfg.n:
            return
        for s in m.suspects:
            if s.view == m.view:
                self._add_suspect(s, sender)
        self._check_suspects(now)

    def _add_suspect(self, m: Suspect, sender: int) -> bool:
        # (Relayed ones count too: the signature names the author.)
        if (m.view != self.view or not 0 <= m.replica < self.cfg.n or m.replica == self.id
                or m.replica in self.suspects):
            return False
        if not self.signer.verify(m.replica, m.signable(), m.sig):
            self._fault(sender, "bad suspect signature")
            return False
        self.suspects.add(m.replica, m)
        return True

    def _check_suspects(self, now: float) -> None:
        if len(self.suspects) < self.cfg.quorum:
            return
        cert = SuspectCert(self.view, tuple(self.suspects.values()))
        # Views that end without progress: wait longer in the next (§4.5.2); reset by progress.
        self.vc_attempts += 1
        # Every correct replica that gets the certificate follows: none stays behind in the old
        # view (it is kept with the view-change, and re-sent after a restart too).
        self._start_view_change(self.view + 1, now, f"{len(cert.suspects)} replicas suspect view {cert.view}",
                                cert)
        self._out.append(Send(None, cert))

    def _start_view_change(self, view: int, now: float, why: str, left_with: SuspectCert | None = None) -> None:
        if view <= self.view:
            return
        self._out.append(ViewChanged(self.view, view, False, why))
        self.view = view
        self.status = VIEW_CHANGE
        self.suspects = VoteSet()
        self._left_with = left_with
        self.timers.pop("batch", None)
        # `proposed` means "carried by a pre-prepare of this view": none yet (the new view's O
        # set refills it). Left stale, a client retransmission to a replica that is alone in a
        # view change would never be relayed (see request()).
        self.requests.new_view()
        prepared = tuple(self._forwardable(s, c) for s, c in sorted(self.certs.items()) if s > self.h)
        c = self.ckpt
        vc = ViewChange(view, c.h, c.digest, c.proof, prepared, self.id)
        vc = ViewChange(vc.view, vc.stable_seq, vc.stable_digest, vc.checkpoint_proof,
                        vc.prepared, self.id, self.signer.sign(vc.signable()))
        self.view_changes.setdefault(view, {})[self.id] = vc
        self.store.save_view(ViewState(view, True, vc, self._left_with))
        self._out.append(Send(None, vc))
        self._set_timer("view", now + self._timeout())
        self._try_new_view(view, now)

    def _valid_view_change(self, vc: ViewChange) -> bool:
        # The same view-change comes again and again (re-sent, inside every NEW-VIEW that
        # carries it); its signature binds every byte, so one full check per content is enough.
        key = (vc.replica, vc.view, vc.sig)
        seen = self._valid_vcs.get(key)
        if seen is not None and (seen is vc or seen == vc):
            return True
        if not self._check_view_change(vc):
            return False
        if len(self._valid_vcs) > 8 * self.cfg.n:
            self._valid_vcs.clear()
        self._valid_vcs[key] = vc
        return True

    def _check_view_change(self, vc: ViewChange) -> bool:
        if not self.signer.verify(vc.replica, vc.signable(), vc.sig):
            return False
        if not self._valid_proof(vc.stable_seq, vc.stable_digest, vc.checkpoint_proof):
            return False
        seen = set()
        for cert in vc.prepared:
            if type(cert) is not PreparedCert or type(cert.pre_prepare) is not PrePrepare:
                return False
            pp = cert.pre_prepare
            if (pp.seq in seen or pp.seq <= vc.stable_seq or pp.view >= vc.view
                    or pp.seq > vc.stable_seq + self.cfg.log_size):
                return False
            seen.add(pp.seq)
            if pp.replica != self.cfg.primary(pp.view) or pp.digest != batch_digest(pp.timestamp, pp.requests):
                return False
            if not self.signer.verify(pp.replica, pp.signable(), pp.sig):
                return False
            signers = set()
            for p in cert.prepares:
                if (type(p) is not Prepare or p.view != pp.view or p.seq != pp.seq
                        or p.digest != pp.digest or p.replica == pp.replica or p.replica in signers):
                    return False
                if not self.signer.verify(p.replica, p.signable(), p.sig):
                    return False
                signers.add(p.replica)
            if len(signers) < self.cfg.quorum - 1:
                return False
        return True

    def _on_view_change(self, vc: ViewChange, sender: int, now: float) -> None:
        if vc.replica != sender:
            return
        changing = self.status is VIEW_CHANGE
        if vc.view <= self.view and not (vc.view == self.view and changing):
            # A replica still asking for a view we are past: it missed the NEW-VIEW; forward it
            # (it is signed by its primary, so any replica may relay it).
            if self.new_view_msg is not None and not changing and vc.view <= self.view:
                self._send_new_view(sender, now)
            if vc.view < self.view or not changing:
                return
        if vc.view > self.view + 4 * self.cfg.n:
            return  # bounded memory against a replica spamming far-future views
        if not self._valid_view_change(vc):
            self._fault(sender, "invalid view-change")
            return
        self.view_changes.setdefault(vc.view, {})[sender] = vc
        # §4.5.2 liveness: once f+1 others ask for views above ours, join the smallest of them.
        others = [(v, r) for v, d in self.view_changes.items() if v > self.view
                  for r in d if r != self.id]
        if len({r for _, r in others}) >= self.cfg.f + 1:
            target = min(v for v, _ in others)
            self._start_view_change(target, now, f"{self.cfg.f + 1} replicas moved to view {target} or later")
        self._try_new_view(vc.view, now)

    def _send_new_view(self, to: int, now: float) -> None:
        # A NEW-VIEW carries 2f+1 view-changes with their certificates (megabytes with big
        # batches): once per peer and view per few status intervals, however often it asks.
        key = (to, self.new_view_msg.view)
        if now >= self._nv_sent.get(key, 0.0):
            if len(self._nv_sent) > 4 * self.cfg.n:
                self._nv_sent = {k: t for k, t in self._nv_sent.items() if t > now}
            self._nv_sent[key] = now + 4 * self.cfg.status_interval
            self._out.append(Send(to, self.new_view_msg))

    def _compute_new_view(self, view: int, vcs: list[ViewChange]) -> tuple[PrePrepare, ...]:
        min_s = max(vc.stable_seq for vc in vcs)
        best: dict[int, PrePrepare] = {}
        for vc in vcs:
            for cert in vc.prepared:
                pp = cert.pre_prepare
                if pp.seq > min_s and (pp.seq not in best or pp.view > best[pp.seq].view):
                    best[pp.seq] = pp
        max_s = max(best, default=min_s)
        out = []
        for s in range(min_s + 1, max_s + 1):
            old = best.get(s)
            if old is not None:
                out.append(PrePrepare(view, s, old.timestamp, old.digest, old.requests,
                                      self.cfg.primary(view)))
            else:
                # A gap no correct replica prepared: fill it with a null request.
                out.append(PrePrepare(view, s, 0, batch_digest(0, ()), (), self.cfg.primary(view)))
        return tuple(out)

    def _try_new_view(self, view: int, now: float) -> None:
        if self.cfg.primary(view) != self.id or view != self.view or self.status is not VIEW_CHANGE:
            return
        vcs = self.view_changes.get(view, {})
        if len(vcs) < self.cfg.quorum or self.id not in vcs:
            return
        chosen = [vcs[self.id]] + [v for r, v in sorted(vcs.items()) if r != self.id]
        chosen = chosen[:self.cfg.quorum]
        pps = self._compute_new_view(view, chosen)
        pps = tuple(PrePrepare(p.view, p.seq, p.timestamp, p.digest, p.requests, self.id,
                               self.signer.sign(p.signable())) for p in pps)
        nv = NewView(view, tuple(chosen), pps, self.id)
        nv = NewView(nv.view, nv.view_changes, nv.pre_prepares, self.id, self.signer.sign(nv.signable()))
        self._out.append(Send(None, nv))
        self._enter_view(nv, now)

    def _on_new_view(self, nv: NewView, sender: int, now: float) -> None:
        if nv.view < self.view or (nv.view == self.view and self.status is not VIEW_CHANGE):
            return
        p = self.cfg.primary(nv.view)
        if nv.replica != p or not self.signer.verify(p, nv.signable(), nv.sig):
            return
        vcs = list(nv.view_changes)
        if len({vc.replica for vc in vcs}) < self.cfg.quorum or len(vcs) != len({vc.replica for vc in vcs}):
            return
        for vc in vcs:
            if type(vc) is not ViewChange or vc.view != nv.view or not self._valid_view_change(vc):
                self._fault(p, "new-view with invalid view-change")
                return
        expect = self._compute_new_view(nv.view, vcs)
        if len(expect) != len(nv.pre_prepares) or any(
                (a.seq, a.digest, a.timestamp) != (b.seq, b.digest, b.timestamp) or b.view != nv.view
                or b.replica != p or not self.signer.verify(p, b.signable(), b.sig)
                for a, b in zip(expect, nv.pre_prepares)):
            # The new primary lied about O. Its 2f+1 view-changes are genuine: join that view
            # change, and suspect it (the next view once 2f+1 replicas do).
            self._fault(p, "new-view with wrong pre-prepares")
            self._start_view_change(nv.view, now, f"{self.cfg.quorum} replicas moved to view {nv.view}")
            self._suspect(now, f"new-view {nv.view} with wrong pre-prepares")
            return
        self._enter_view(nv, now)

    def _enter_view(self, nv: NewView, now: float) -> None:
        self._out.append(ViewChanged(self._active_view, nv.view, True, f"new-view from primary {nv.replica}"))
        if nv.view != self.view:
            self.suspects = VoteSet()
        # (Suspects of this view sent while it was being set up, when its new-view was late,
        # still count: every replica must count the same ones, whenever it got the new-view.)
        self._active_view = nv.view
        self.view = nv.view
        self.status = NORMAL
        self.new_view_msg = nv
        self._left_with = None
        self.store.save_view(ViewState(nv.view, False))
        self.store.save_new_view(nv)
        for v in [v for v in self.view_changes if v <= nv.view]:
            del self.view_changes[v]
        min_s = max(vc.stable_seq for vc in nv.view_changes)
        if min_s > self.h:
            for vc in nv.view_changes:
                if vc.stable_seq == min_s:
                    own = self.ckpt.own.get(min_s)
                    if own is not None and own[0] == vc.stable_digest:
                        self._make_stable(min_s, vc.stable_digest, own[1], vc.checkpoint_proof)
                    else:
                        for c in vc.checkpoint_proof:
                            self.ckpt.vote(c)
                        self._fetch(vc.replica if vc.replica != self.id else None)
                    break
        self.requests.new_view()
        max_s = max((p.seq for p in nv.pre_prepares), default=min_s)
        self.seq = max(max_s, min_s, self.last_exec)
        for pp in nv.pre_prepares:
            self.max_seen = max(self.max_seen, pp.seq)
            # A new primary's batches must not run behind the re-proposed ones (an old primary's
            # clock may be ahead of ours): backups that executed those would reject ours.
            self._primary_ts = max(self._primary_ts, pp.timestamp)
            for r in pp.requests:
                self.requests.mark_proposed(request_id(r))
            if self.id == nv.replica:
                slot = self._slot(pp.seq, nv.view)
                slot.pp = pp
                self.store.save_pre_prepare(pp)
                self._check_prepared(pp.seq, slot, now)
            else:
                # Re-proposals were time-checked in their first view; only the digest matters.
                self._on_pre_prepare(pp, nv.replica, now, check_time=False)
        # Requests no re-proposal carries go back to the queue of the new primary.
        self.requests.requeue()
        if self.id != nv.replica and self.cfg.forward_requests:
            # We relayed these to the old primary (or got them during the view change, when
            # nothing is relayed); the new one may never have seen them. Without this they
            # wait for a client retransmission, or forever where the client only talks to us.
            for rid in self.requests.queue:
                self._out.append(Send(nv.replica, Request(self.pending[rid])))
        if self.pending:
            self._arm_view_timer(now)
        else:
            self.timers.pop("view", None)
            self._timed_rid = None
        if self.is_primary:
            self._maybe_propose(now)

