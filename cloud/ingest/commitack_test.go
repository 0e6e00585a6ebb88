package ingest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/internal/nettest"
	"github.com/plantroom/plantroom/protocol"
)

// ackInbox collects the commit acknowledgements a gateway receives. When
// stored is set, it counts, as each ack arrives, the readings stored for
// every seq the ack covers, to show that acks follow the commit.
type ackInbox struct {
	mu     sync.Mutex
	acks   []protocol.Ack
	bad    []string
	stored func(seq uint64) uint64
	early  []uint64 // seqs acknowledged before any of their readings was stored
}

func (a *ackInbox) handler(_ paho.Client, m paho.Message) {
	ack, err := protocol.DecodeAck(m.Payload())
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.bad = append(a.bad, fmt.Sprintf("%s: %v", m.Payload(), err))
		return
	}
	if a.stored != nil {
		for _, r := range ack.Committed {
			for s := r[0]; s <= r[1]; s++ {
				if a.stored(s) == 0 {
					a.early = append(a.early, s)
				}
			}
		}
	}
	a.acks = append(a.acks, ack)
}

// covered reports whether every seq in [from, to] of epoch is covered by a
// committed range of some ack received.
func (a *ackInbox) covered(epoch, from, to uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := from; s <= to; s++ {
		ok := false
		for i := range a.acks {
			if a.acks[i].Epoch == epoch && a.acks[i].Covers(s) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (a *ackInbox) rejected(epoch, seq uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ack := range a.acks {
		for _, r := range ack.Rejected {
			if ack.Epoch == epoch && r.Seq == seq {
				return r.Cause
			}
		}
	}
	return ""
}

func (a *ackInbox) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acks)
}

func (a *ackInbox) reset() {
	a.mu.Lock()
	a.acks = nil
	a.mu.Unlock()
}

// listenAcks subscribes c to ref's downlink topics.
func listenAcks(t testing.TB, c paho.Client, ref protocol.GatewayRef, in *ackInbox) {
	t.Helper()
	tok := c.Subscribe(ref.DownlinkFilter(), 1, in.handler)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to %q: %v", ref.DownlinkFilter(), tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[ref.DownlinkFilter()]; code > 2 {
		t.Fatalf("subscription to %q refused: %#x", ref.DownlinkFilter(), code)
	}
}

// epochBatch is makeBatch under another epoch.
func epochBatch(epoch, seq uint64, start time.Time, n int) *protocol.Batch {
	b := makeBatch("gw-garden-1", seq, start, gardenDevices, n)
	b.Epoch = epoch
	return b
}

func (e *env) storedSeq(seq uint64) uint64 {
	return e.count("SELECT count() FROM readings WHERE gateway = 'gw-garden-1' AND seq = ?", seq)
}

// TestCommitAcks follows a gateway through the embedded broker: acks come
// only after the commit and in ranges; a re-sent batch is stored once and
// acknowledged again; another batch under a committed seq is refused as a
// seq_conflict (counted, a gateway event, a rejected ack entry) and stores
// nothing; all of this survives an ingest restart and holds beyond the
// in-memory window; an online status brings a re-announcement; a
// version-1 gateway is stored as epoch 0 without acks.
func TestCommitAcks(t *testing.T) {
	e := newEnv(t, envOptions{})
	const epoch = 4011536289077452891
	gw := e.gateway(garden, "gw-garden-1", nil)
	acks := &ackInbox{stored: e.storedSeq}
	listenAcks(t, gw, garden, acks)
	tel := garden.Topic(protocol.KindTelemetry)
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * 5 * time.Minute) }

	var sent [][]byte
	for s := 1; s <= 5; s++ {
		p := encode(t, epochBatch(epoch, uint64(s), at(s), 3))
		sent = append(sent, p)
		publish(t, gw, tel, p)
	}
	const perBatch = 3 * 2 * 2
	e.waitStored(20*time.Second, 5*perBatch, e.ingest)
	waitFor(t, 10*time.Second, "acks covering seqs 1-5", func() bool { return acks.covered(epoch, 1, 5) })
	if len(acks.early) > 0 || len(acks.bad) > 0 {
		t.Fatalf("acks before the commit for seqs %v; undecodable acks %v", acks.early, acks.bad)
	}
	figures := e.hourly()

	// A re-send (the ack was lost): stored once, acknowledged again.
	acks.reset()
	publish(t, gw, tel, sent[1])
	waitFor(t, 10*time.Second, "seq 2 acknowledged again", func() bool { return acks.covered(epoch, 2, 2) })
	if d := e.metric(e.ingest.metrics.duplicates); d != 1 {
		t.Errorf("duplicates = %v, want 1", d)
	}

	// Another batch under committed seq 3: refused, nothing stored.
	forged := epochBatch(epoch, 3, at(3), 3)
	for i := range forged.Readings {
		forged.Readings[i].Value = 777
	}
	publish(t, gw, tel, encode(t, forged))
	waitFor(t, 10*time.Second, "seq 3 rejected", func() bool { return acks.rejected(epoch, 3) == protocol.RejectSeqConflict })
	if n := e.rejectedMessages(CauseSeqConflict); n != 1 {
		t.Errorf("rejected{seq_conflict} = %v, want 1", n)
	}
	waitFor(t, 10*time.Second, "the seq_conflict gateway event", func() bool {
		return e.count("SELECT count() FROM events FINAL WHERE gateway = 'gw-garden-1' AND kind = 'seq_conflict' AND seq = 3") == 1
	})
	if raw := e.count("SELECT count() FROM readings"); raw != 5*perBatch {
		t.Errorf("%d raw rows, want %d", raw, 5*perBatch)
	}
	if n := e.count("SELECT count() FROM readings WHERE value = 777"); n != 0 {
		t.Errorf("%d readings of the conflicting batch stored", n)
	}
	if got := e.hourly(); got != figures {
		t.Errorf("the re-send and the conflict changed the roll-up:\n%s\nwas\n%s", got, figures)
	}

	// A restarted ingest (nothing in memory) knows both from ClickHouse.
	e.ingest.Stop()
	in := e.startIngest()
	acks.reset()
	publish(t, gw, tel, sent[0])
	publish(t, gw, tel, encode(t, forged))
	waitFor(t, 10*time.Second, "after a restart: seq 1 acknowledged, seq 3 rejected", func() bool {
		return acks.covered(epoch, 1, 1) && acks.rejected(epoch, 3) == protocol.RejectSeqConflict
	})
	if n := e.metric(in.metrics.readings); n != 0 {
		t.Errorf("the restarted ingest stored %v readings", n)
	}

	// Beyond the in-memory window: recentWindow more batches, then a
	// conflict on the first of them and on seq 4.
	var more [][]byte
	for s := 6; s < 6+recentWindow+10; s++ {
		b := &protocol.Batch{Epoch: epoch, Gateway: "gw-garden-1", Seq: uint64(s), SentAt: at(0).UnixMilli() + int64(s),
			Readings: []protocol.Reading{{Device: "garden-pump-1", Metric: "power_w", TS: at(0).UnixMilli() + int64(s), Value: float64(s)}}}
		p := encode(t, b)
		more = append(more, p)
		in.handle(fakeMessage{topic: tel, payload: p}) // straight into the handler: 500 publishes are slow under -race
	}
	waitFor(t, 30*time.Second, "the window's batches acknowledged", func() bool { return acks.covered(epoch, 6, uint64(5+len(more))) })
	old := &protocol.Batch{Epoch: epoch, Gateway: "gw-garden-1", Seq: 6, SentAt: at(0).UnixMilli(),
		Readings: []protocol.Reading{{Device: "garden-pump-1", Metric: "power_w", TS: at(0).UnixMilli() + 6, Value: 777}}}
	publish(t, gw, tel, encode(t, old))
	waitFor(t, 10*time.Second, "seq 6 rejected after the window moved on", func() bool { return acks.rejected(epoch, 6) == protocol.RejectSeqConflict })

	// A new queue (new epoch) may start again at seq 1.
	const epoch2 = 77
	publish(t, gw, tel, encode(t, epochBatch(epoch2, 1, at(20), 3)))
	waitFor(t, 10*time.Second, "seq 1 of the new epoch acknowledged", func() bool { return acks.covered(epoch2, 1, 1) })

	// Online: the cloud re-announces the committed seqs of the current epoch.
	gw2 := e.gateway(garden, "gw-garden-1-b", nil)
	acks2 := &ackInbox{}
	listenAcks(t, gw2, garden, acks2)
	m := acks.count()
	publish(t, gw, garden.Topic(protocol.KindStatus), protocol.EncodeStatus(protocol.Status{Gateway: "gw-garden-1", State: protocol.StateOnline, TS: time.Now().UnixMilli()}))
	// One message (epoch 77 has one committed seq); the first gateway,
	// on the same topic, gets it too: counted before the next step looks.
	waitFor(t, 10*time.Second, "the re-announcement of epoch 77", func() bool { return acks2.covered(epoch2, 1, 1) && acks.count() > m })

	// A version-1 gateway: stored as epoch 0, never acknowledged.
	n := acks.count()
	v1b := makeBatch("gw-garden-1", 1, at(30), gardenDevices, 1)
	v1b.Epoch = 0
	v1, err := protocol.AppendBatchV1(nil, v1b)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, gw, garden.PrefixV1()+"/telemetry", v1)
	waitFor(t, 10*time.Second, "the version-1 batch stored", func() bool {
		return e.count("SELECT count() FROM committed_batches WHERE gateway = 'gw-garden-1' AND epoch = 0 AND seq = 1") == 1
	})
	// A v2 batch on a v1 topic (and the reverse) is refused.
	before := e.rejectedMessages("version")
	publish(t, gw, garden.PrefixV1()+"/telemetry", encode(t, epochBatch(epoch2, 2, at(31), 1)))
	publish(t, gw, tel, v1)
	waitFor(t, 10*time.Second, "mismatched versions refused", func() bool { return e.rejectedMessages("version") == before+2 })
	time.Sleep(200 * time.Millisecond) // an ack for epoch 0 would arrive by now
	if got := acks.count(); got != n {
		t.Errorf("%d acks after the version-1 batch, want %d (none)", got, n)
	}
}

// fakeMessage is a paho.Message for calling the handler directly.
type fakeMessage struct {
	topic   string
	payload []byte
}

func (m fakeMessage) Duplicate() bool   { return false }
func (m fakeMessage) Qos() byte         { return 1 }
func (m fakeMessage) Retained() bool    { return false }
func (m fakeMessage) Topic() string     { return m.topic }
func (m fakeMessage) MessageID() uint16 { return 0 }
func (m fakeMessage) Payload() []byte   { return m.payload }
func (m fakeMessage) Ack()              {}

// TestCommitAcksTwoReplicas runs two ingest replicas on a shared
// subscription, on the embedded broker and on mosquitto with per-user
// passwords and ACLs: every batch is acknowledged by the replica that
// committed it, a re-send reaching either replica is acknowledged again and
// changes no stored value, and a conflict under a seq both replicas know
// committed is refused whichever replica gets it.
func TestCommitAcksTwoReplicas(t *testing.T) {
	for _, brokerKind := range []string{"embedded", "mosquitto"} {
		t.Run(brokerKind, func(t *testing.T) {
			e := newEnv(t, envOptions{noIngest: true})
			addr, ingestUser, ingestPW := e.broker.Addr(), "plantroom-ingest", e.brokerPW
			if brokerKind == "mosquitto" {
				addr, ingestUser, ingestPW = startMosquittoWithACL(t)
			}
			replica := func(id string) *Ingest {
				cfg := e.cfg
				cfg.MQTT = MQTTConfig{URL: "tcp://" + addr, Username: ingestUser, Password: ingestPW, ClientID: "plantroom-ingest-" + id, SharedGroup: "ingest"}
				cfg.Observers = nil
				return e.startIngestWith(cfg)
			}
			a, b := replica("a"), replica("b")
			gw := connect(t, addr, "gw-garden-1", "gw-garden-1-secret", "gw-garden-1", nil)
			acks := &ackInbox{}
			listenAcks(t, gw, garden, acks)

			const epoch, batches = 99, 40
			start := time.Now().Add(-4 * time.Hour).Truncate(time.Hour)
			var payloads [][]byte
			for s := 1; s <= batches; s++ {
				payloads = append(payloads, encode(t, epochBatch(epoch, uint64(s), start.Add(time.Duration(s)*5*time.Minute), 5)))
			}
			var toks []paho.Token
			for _, p := range payloads {
				toks = append(toks, gw.Publish(garden.Topic(protocol.KindTelemetry), 1, false, p))
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
					t.Fatalf("publish: %v", tok.Error())
				}
			}
			waitFor(t, 30*time.Second, "acks for every batch", func() bool { return acks.covered(epoch, 1, batches) })
			const want = batches * 5 * 2 * 2
			e.waitStored(10*time.Second, want, a, b)
			if na, nb := e.metric(a.metrics.acks), e.metric(b.metrics.acks); na == 0 || nb == 0 {
				t.Errorf("acks published by the replicas: %v and %v, want both to acknowledge what they committed", na, nb)
			}

			// Every batch re-sent, wherever it lands: acknowledged again,
			// and no stored value changes. A replica recognises a duplicate
			// at or below the highest seq it knows committed (its own
			// commits, and what it read at start); a re-send above it is
			// stored again, which the storage rule makes harmless.
			figures := e.hourly()
			acks.reset()
			for _, p := range payloads {
				publish(t, gw, garden.Topic(protocol.KindTelemetry), p)
			}
			waitFor(t, 30*time.Second, "every re-send acknowledged again", func() bool { return acks.covered(epoch, 1, batches) })
			if d := e.metric(a.metrics.duplicates) + e.metric(b.metrics.duplicates); d == 0 {
				t.Errorf("no re-send recognised as a duplicate")
			}
			e.waitStored(10*time.Second, want, a, b)
			if got := e.hourly(); got != figures {
				t.Errorf("the re-sends changed the roll-up:\n%s\nwas\n%s", got, figures)
			}
			// Conflicts on every seq: refused by either replica.
			for s := 1; s <= 10; s++ {
				f := epochBatch(epoch, uint64(s), start, 1)
				publish(t, gw, garden.Topic(protocol.KindTelemetry), encode(t, f))
			}
			waitFor(t, 30*time.Second, "ten conflicts refused", func() bool {
				return e.metric(a.metrics.rejectedMessages.WithLabelValues(CauseSeqConflict))+
					e.metric(b.metrics.rejectedMessages.WithLabelValues(CauseSeqConflict)) == 10
			})
			// The count moves before the ack is published: wait for the acks.
			waitFor(t, 10*time.Second, "ten rejected entries in the acks", func() bool {
				for s := uint64(1); s <= 10; s++ {
					if acks.rejected(epoch, s) != protocol.RejectSeqConflict {
						return false
					}
				}
				return true
			})
			if n := e.stored(); n != want {
				t.Errorf("%d readings after the conflicts, want %d", n, want)
			}
			if n := e.count("SELECT count() FROM readings WHERE ts_ms = ?", start.UnixMilli()); n != 0 {
				t.Errorf("%d readings of the conflicting batches stored", n)
			}
		})
	}
}

// startMosquittoWithACL runs mosquitto with a password file and an ACL
// written as docs/cloud.md shows: the ingest reads every gateway topic and
// publishes acks; each gateway writes its own uplink topics and reads its own
// downlinks. It returns the address and the ingest's credentials.
func startMosquittoWithACL(t *testing.T) (addr, user, password string) {
	t.Helper()
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	users := map[string]string{"plantroom-ingest": "ingest-secret", "gw-garden-1": "gw-garden-1-secret", "gw-tower-1": "gw-tower-1-secret"}
	if err := os.WriteFile(pwFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for u, p := range users {
		if out, err := exec.Command("mosquitto_passwd", "-b", pwFile, u, p).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	acl := "user plantroom-ingest\ntopic read plantroom/v2/#\ntopic read plantroom/v1/#\ntopic write plantroom/v2/+/+/+/down/ack\n\n"
	for _, g := range []protocol.GatewayRef{garden, tower} {
		p := g.Prefix()
		acl += fmt.Sprintf("user %s\ntopic write %s/telemetry\ntopic write %s/status\ntopic write %s/events\ntopic read %s/down/#\n\n",
			g.Gateway, p, p, p, p)
	}
	if err := os.WriteFile(aclFile, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	m := nettest.StartMosquitto(t, nettest.MosquittoOptions{
		Config: fmt.Sprintf("user root\nallow_anonymous false\npassword_file %s\nacl_file %s\nmax_inflight_messages 200\nmax_queued_messages 0\n", pwFile, aclFile),
	})
	return m.Addr(), "plantroom-ingest", "ingest-secret"
}
