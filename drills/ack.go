package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/internal/nettest"
)

// The drills of delivered-means-committed: brokers that acknowledge a
// batch and then lose it, and ingests that die between their commit and
// its acknowledgement. In each, the edge keeps every batch until the
// cloud's commit acknowledgement covers it and sends it again after
// uplink.commit_timeout (drillCommitTimeout here): nothing may be lost.
var ackDrills = []drill{
	{
		name:  "mosq-ingest-late",
		about: "the gateway sends to mosquitto before the ingest ever subscribed (mosquitto drops it), then the ingest starts",
		spec:  func(*Options) standSpec { return standSpec{mosquitto: true, lateIngest: true} },
		fault: ingestLate,
	},
	{
		name:  "mosq-restart",
		about: "mosquitto (persistence false) gets SIGKILL while the ingest is down and starts again empty",
		spec:  func(*Options) standSpec { return standSpec{mosquitto: true} },
		fault: mosquittoRestart,
	},
	{
		name:  "mosq-takeover",
		about: "while the ingest is down, a client takes its client id with a clean session (mosquitto drops the queued messages)",
		spec:  func(*Options) standSpec { return standSpec{mosquitto: true} },
		fault: mosquittoTakeover,
	},
	{
		name:  "broker-kill-nostore",
		about: "the embedded broker without store_path gets SIGKILL while it holds messages for the dead ingest",
		spec:  func(*Options) standSpec { return standSpec{layout: brokerApart, noStore: true} },
		fault: brokerKill,
	},
	{
		name:  "ingest-kill-ack",
		about: "the ingest gets SIGKILL after its ClickHouse commit and before its acknowledgements leave",
		spec: func(*Options) standSpec {
			return standSpec{layout: ingestApart, ingestFlush: 2 * time.Second, ingestLink: true, commitTimeout: 6 * time.Second}
		},
		fault: ingestKillBeforeAck,
	},
	{
		name:  "mosq-shared-kill",
		about: "two ingest replicas on a mosquitto shared subscription; one gets SIGKILL while it holds messages",
		spec: func(*Options) standSpec {
			return standSpec{mosquitto: true, replicas: 2, ingestFlush: 2 * time.Second, commitTimeout: 6 * time.Second}
		},
		fault: sharedReplicaKill,
	},
}

func init() { drills = append(drills, ackDrills...) }

// writeMosquitto sets up the mosquitto stand: the broker process (Debian's
// defaults: persistence false; anonymous on loopback) and one or more
// ingest processes, the first with the API.
func (s *Stand) writeMosquitto(proc func(string, *app.Config) (*Process, error), metrics ...string) error {
	bin := nettest.MosquittoBinary()
	if bin == "" {
		return errors.New("cannot run a mosquitto drill: mosquitto is not installed (apt-get install mosquitto)")
	}
	_, port, err := splitPort(s.brokerAddr)
	if err != nil {
		return err
	}
	conf := s.path("mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return fmt.Errorf("cannot write %q: %w", conf, err)
	}
	s.mosq = newProcess("mosquitto", bin, []string{"-c", conf}, childEnv(), s.path("mosquitto.log"))
	s.brokerProc = s.mosq
	n := max(s.spec.replicas, 1)
	for i := 0; i < n; i++ {
		components := []string{app.ComponentIngest}
		name := fmt.Sprintf("ingest-%d", i+1)
		if i == 0 {
			components = append(components, app.ComponentAPI)
			name = "ingest"
		}
		cfg := cloudFile(s, components, metrics[i], s.apiAddr)
		ingestExternal(s, cfg)
		cfg.Broker.External.Username, cfg.Broker.External.Password = "", ""
		if n > 1 {
			cfg.Broker.External.SharedGroup = "ingest"
			cfg.Ingest.ClientID = fmt.Sprintf("%s-%d", ingestClientID, i+1)
		}
		p, err := proc(name, cfg)
		if err != nil {
			return err
		}
		s.ingestProcs = append(s.ingestProcs, p)
		s.metricsOf[p] = metrics[i]
	}
	s.ingestProc, s.apiProc, s.ingestMetrics = s.ingestProcs[0], s.ingestProcs[0], metrics[0]
	return nil
}

func splitPort(addr string) (string, string, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("cannot split %q into host and port", addr)
}

// awaitingCommit is the readings the broker acknowledged to the edge
// (PUBACK) and the cloud has not acknowledged as committed.
func (s *Stand) awaitingCommit(ctx context.Context) (int64, error) {
	m, err := s.edgeMetrics(ctx)
	if err != nil {
		return 0, err
	}
	return m.Int(mEdgeQueueRead, "state", "awaiting_commit"), nil
}

// ingestLate lets the gateway publish to mosquitto before any ingest has
// subscribed: mosquitto acknowledges and throws the batches away. Then the
// ingest starts; the edge, with no commit acknowledgement for them, sends
// them again.
func ingestLate(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, 2*warm); err != nil {
		return err
	}
	thrown, err := s.awaitingCommit(ctx)
	if err != nil {
		return err
	}
	if thrown == 0 {
		r.problem("mosquitto acknowledged nothing before the ingest subscribed, so the drill proved nothing")
	}
	r.note("mosquitto had acknowledged %d readings before the ingest ever subscribed, and dropped them", thrown)
	for _, p := range s.ingestProcs {
		if err := s.startCloud(ctx, p); err != nil {
			return err
		}
	}
	if err := s.awaitStored(ctx); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// killIngestAndHold kills the (first) ingest and lets the broker queue
// the gateway's batches for its session for a few seconds; it returns the
// readings the broker has acknowledged to the edge and the cloud has not
// committed: what the broker holds for the dead ingest.
func (s *Stand) killIngestAndHold(ctx context.Context, hold time.Duration) (int64, error) {
	before, err := s.cloudMetrics(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.ingestProc.Kill(); err != nil {
		return 0, err
	}
	s.insertedBefore += before.Int(mIngestReadings)
	if err := pause(ctx, hold); err != nil {
		return 0, err
	}
	return s.awaitingCommit(ctx)
}

// mosquittoRestart: the ingest dies, mosquitto (persistence false) queues
// the gateway's batches for it in memory, gets SIGKILL and starts again
// empty, then the ingest comes back.
func mosquittoRestart(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	held, err := s.killIngestAndHold(ctx, 3*time.Second)
	if err != nil {
		return err
	}
	if err := s.mosq.Kill(); err != nil {
		return err
	}
	r.note("SIGKILL of the ingest, 3s later of mosquitto, which then held %d readings acknowledged to the gateway", held)
	if held <= 0 {
		r.problem("mosquitto held nothing for the ingest when it was killed, so the drill proved nothing")
	}
	if err := pause(ctx, o.brokerDown); err != nil {
		return err
	}
	if err := s.startCloud(ctx, s.mosq); err != nil {
		return err
	}
	if err := s.awaitConnected(ctx); err != nil {
		return err
	}
	if err := s.startCloud(ctx, s.ingestProc); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// mosquittoTakeover: while the ingest is down, another client connects
// with the ingest's client id and a clean session, which makes mosquitto
// discard everything it queued for the ingest.
func mosquittoTakeover(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	held, err := s.killIngestAndHold(ctx, 3*time.Second)
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + s.brokerAddr).
		SetClientID(ingestClientID).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("cannot connect as %q with a clean session: %v", ingestClientID, tok.Error())
	}
	c.Disconnect(100)
	r.note("a clean session took the ingest's client id while mosquitto held %d readings acknowledged to the gateway", held)
	if held <= 0 {
		r.problem("mosquitto held nothing for the ingest, so the drill proved nothing")
	}
	if err := pause(ctx, time.Second); err != nil {
		return err
	}
	if err := s.startCloud(ctx, s.ingestProc); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// ingestKillBeforeAck cuts the link between the ingest and the broker
// while the ingest holds messages it has not committed, waits until it
// commits them to ClickHouse (its acknowledgements cannot leave), and
// kills it. The edge sends those batches again; storage collapses the
// duplicates.
func ingestKillBeforeAck(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	var inserted int64
	busy := s.awaitCloud(ctx, 10*time.Second, func(m *Metrics) bool {
		inserted = m.Int(mIngestReadings)
		return m.Int(mIngestUnacked) >= 1
	})
	s.ingestLink.Cut(nettest.CutBlackhole)
	cutAt := time.Now()
	var after int64
	committed := s.awaitCloud(ctx, 10*time.Second, func(m *Metrics) bool {
		after = m.Int(mIngestReadings)
		return after > inserted
	})
	s.insertedBefore += after
	if err := s.ingestProc.Kill(); err != nil {
		return err
	}
	s.ingestLink.Restore()
	if !busy || !committed {
		r.problem("the ingest did not commit while its acknowledgements were held (holding messages: %t, committed: %t)", busy, committed)
	}
	r.note("SIGKILL %s after the ingest's link was cut, with %d readings committed and not acknowledged",
		time.Since(cutAt).Round(100*time.Millisecond), after-inserted)
	if err := pause(ctx, o.ingestDown); err != nil {
		return err
	}
	if err := s.startCloud(ctx, s.ingestProc); err != nil {
		return err
	}
	return pause(ctx, warm)
}

// sharedReplicaKill kills the second of two ingest replicas on a mosquitto
// shared subscription while it holds messages, and starts it again after
// -ingest-down.
func sharedReplicaKill(ctx context.Context, o *Options, s *Stand, r *Result) error {
	if err := pause(ctx, warm); err != nil {
		return err
	}
	victim := s.ingestProcs[1]
	addr := s.metricsOf[victim]
	var unacked, inserted int64
	busy := false
	pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = poll(pollCtx, 20*time.Millisecond, func() (bool, error) {
		m, err := scrape(pollCtx, addr)
		if err == nil {
			unacked, inserted = m.Int(mIngestUnacked), m.Int(mIngestReadings)
			busy = unacked >= 1
		}
		return busy, nil
	})
	cancel()
	if err := victim.Kill(); err != nil {
		return err
	}
	s.insertedBefore += inserted
	r.note("SIGKILL of one of two replicas with %d messages unacknowledged, down %s", unacked, o.ingestDown.Round(time.Second))
	if !busy {
		r.problem("the replica held nothing unacknowledged in 10s of trying")
	}
	if err := pause(ctx, o.ingestDown); err != nil {
		return err
	}
	if err := s.startCloud(ctx, victim); err != nil {
		return err
	}
	return pause(ctx, warm)
}
