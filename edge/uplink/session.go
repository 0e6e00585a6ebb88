package uplink

import (
	"context"
	"fmt"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/edge/queue"
	"github.com/plantroom/plantroom/protocol"
)

type msgKind uint8

const (
	kindBatch msgKind = iota
	kindEvent
)

type msgKey struct {
	kind msgKind
	seq  uint64
}

// outMsg is a message waiting for its PUBACK.
type outMsg struct {
	key      msgKey
	lane     queue.Lane
	readings int
	sent     time.Time
}

type pubResult struct {
	msg *outMsg
	err error
}

// session is one connection to the broker.
type session struct {
	u           *Uplink
	c           paho.Client
	lost        chan error
	results     chan pubResult
	done        chan struct{}
	outstanding map[msgKey]*outMsg
	ackedEvents map[uint64]bool // acknowledged, until the queue's commit deletes them
	resend      []uint64        // seqs to send again at once: in flight when the last connection ended
	// committed: seqs a commit acknowledgement covered while their PUBACK
	// was still outstanding; their PUBACK then has nothing left to do.
	committed   map[uint64]bool
	lastDueScan time.Time
	lastLive    time.Time
	tokens      float64
	lastRefill  time.Time
}

func (u *Uplink) clientOptions(lost chan error) (*paho.ClientOptions, error) {
	will := protocol.EncodeStatus(protocol.Status{
		Gateway: u.cfg.Gateway.Gateway, State: protocol.StateOffline, Reason: "last_will", Agent: u.cfg.AgentVersion,
	})
	o := paho.NewClientOptions().
		AddBroker(u.cfg.Broker).
		SetClientID(u.cfg.ClientID).
		SetUsername(u.cfg.Username).
		SetPassword(u.cfg.Password).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(u.cfg.KeepAlive).
		SetPingTimeout(min(u.cfg.KeepAlive/2, 10*time.Second)).
		SetConnectTimeout(u.cfg.ConnectTimeout).
		SetWriteTimeout(u.cfg.ConnectTimeout).
		SetStore(paho.NewMemoryStore()).
		SetOrderMatters(false).
		SetBinaryWill(u.topics.status, will, 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if IsTLS(u.cfg.Broker) {
		tc, err := tlsConfig(u.cfg.TLS)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// session connects, announces the gateway online, re-sends what is in
// flight and then sends until the connection fails or Stop is called.
func (u *Uplink) session(ctx context.Context) error {
	lost := make(chan error, 1)
	opts, err := u.clientOptions(lost)
	if err != nil {
		return err
	}
	s := &session{
		u: u, lost: lost,
		results:     make(chan pubResult, 2*u.cfg.InFlight),
		done:        make(chan struct{}),
		outstanding: map[msgKey]*outMsg{},
		ackedEvents: map[uint64]bool{},
		committed:   map[uint64]bool{},
		lastRefill:  time.Now(),
	}
	// Downlink messages are taken by the default handler, not by routes
	// the SUBSCRIBE installs: the broker hands over what it kept for the
	// session (an acknowledgement, a command sent during an outage) right
	// after CONNACK, before the SUBSCRIBE, and paho leaves a message that
	// no handler matches unacknowledged and unhandled, so the command
	// would wait at the broker until the next reconnect and expire.
	prefix := u.cfg.Gateway.DownlinkTopic("")
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		if name, ok := strings.CutPrefix(m.Topic(), prefix); ok {
			s.downlink(name, m.Payload())
		}
	})
	c := paho.NewClient(opts)
	s.c = c
	defer func() {
		close(s.done)
		u.connected.Store(false)
		u.m.connected.Set(0)
		u.m.inflight.Set(0)
		c.Disconnect(0)
	}()
	u.m.connectAttempts.Inc()
	tok := c.Connect()
	if !waitToken(tok, u.cfg.ConnectTimeout+time.Second, u.stopped) {
		u.m.connectErrors.Inc()
		return fmt.Errorf("cannot connect to %q: no CONNACK within %s", u.cfg.Broker, u.cfg.ConnectTimeout)
	}
	if err := tok.Error(); err != nil {
		u.m.connectErrors.Inc()
		return fmt.Errorf("cannot connect to %q: %w", u.cfg.Broker, err)
	}
	// Subscribe before announcing the gateway online: the cloud answers
	// "online" with the ranges it has committed.
	if u.beforeSubscribe != nil {
		u.beforeSubscribe()
	}
	if err := s.subscribe(); err != nil {
		return err
	}
	if err := s.publishStatus(protocol.StateOnline, "", u.cfg.PublishTimeout); err != nil {
		return err
	}
	u.connected.Store(true)
	u.m.connected.Set(1)
	u.log.Info("uplink connected", "broker", u.cfg.Broker, "client_id", u.cfg.ClientID, "epoch", u.q.Epoch())
	u.q.MarkLive()
	s.resend = u.sortOutstanding()
	return s.loop(ctx)
}

// waitToken waits for tok, at most timeout, or until stop closes.
func waitToken(tok paho.Token, timeout time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return true
	case <-t.C:
	case <-stop:
	}
	return false
}

func (s *session) publishStatus(state, reason string, timeout time.Duration) error {
	st := protocol.Status{
		Gateway: s.u.cfg.Gateway.Gateway, State: state, TS: time.Now().UnixMilli(),
		Agent: s.u.cfg.AgentVersion, Reason: reason,
	}
	tok := s.c.Publish(s.u.topics.status, 1, true, protocol.EncodeStatus(st))
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("cannot publish %s status: %w", state, err)
		}
		return nil
	case err := <-s.lost:
		return fmt.Errorf("cannot publish %s status: connection lost: %w", state, err)
	case <-t.C:
		return fmt.Errorf("cannot publish %s status: no PUBACK within %s", state, timeout)
	}
}

func (s *session) loop(ctx context.Context) error {
	tick := time.NewTicker(min(100*time.Millisecond, s.u.cfg.BatchMaxDelay))
	defer tick.Stop()
	for {
		if err := s.fill(ctx); err != nil {
			return err
		}
		select {
		case r := <-s.results:
			if err := s.complete(r); err != nil {
				return err
			}
		case err := <-s.lost:
			return fmt.Errorf("connection to %q lost: %w", s.u.cfg.Broker, err)
		case p := <-s.u.acks:
			s.applyAck(p)
		case <-s.u.q.Notify():
		case <-tick.C:
			if err := s.checkTimeouts(); err != nil {
				return err
			}
		case <-s.u.stopped:
			s.shutdown()
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fill publishes until the window is full: re-sends first, then events,
// then live batches, then backlog batches within the rate budget (never
// taking the last free slot).
func (s *session) fill(ctx context.Context) error {
	u := s.u
	free := u.cfg.InFlight - len(s.outstanding)
	if free > 0 && len(s.resend) == 0 {
		s.resend = s.dueResends(free)
	}
	for free > 0 && len(s.resend) > 0 {
		seq := s.resend[0]
		s.resend = s.resend[1:]
		if _, busy := s.outstanding[msgKey{kindBatch, seq}]; busy {
			continue
		}
		b, err := u.q.Resend(seq)
		if err != nil {
			return err
		}
		delete(u.awaiting, seq)
		if b == nil {
			delete(u.resends, seq) // committed, rejected or dropped meanwhile
			continue
		}
		s.publishBatch(b)
		u.m.resent.Inc()
		free--
	}
	if free > 0 || len(s.ackedEvents) > 0 {
		evs := u.q.Events()
		if len(s.ackedEvents) > 0 {
			stored := make(map[uint64]bool, len(evs))
			for _, e := range evs {
				stored[e.Seq] = true
			}
			for seq := range s.ackedEvents {
				if !stored[seq] {
					delete(s.ackedEvents, seq) // deleted from the queue meanwhile
				}
			}
		}
		for _, e := range evs {
			if free == 0 {
				break
			}
			k := msgKey{kindEvent, e.Seq}
			if _, busy := s.outstanding[k]; busy || s.ackedEvents[e.Seq] {
				continue
			}
			s.publish(&outMsg{key: k}, u.topics.events, e.Payload)
			free--
		}
	}
	if free == 0 {
		return nil
	}
	st := u.q.Stats()
	now := time.Now()
	if st.LiveReadings > 0 && (st.LiveReadings >= int64(u.cfg.BatchMaxReadings) || now.Sub(s.lastLive) >= u.cfg.BatchMaxDelay) {
		bs, err := u.q.Next(ctx, queue.Live, u.cfg.BatchMaxReadings, free)
		for _, b := range bs {
			s.publishBatch(b)
			free--
		}
		if err != nil {
			return err
		}
		s.lastLive = now
	}
	s.tokens = min(s.tokens+u.cfg.BacklogRate*now.Sub(s.lastRefill).Seconds(), max(u.cfg.BacklogRate, float64(u.cfg.BatchMaxReadings)))
	s.lastRefill = now
	if free > 1 && len(s.resend) == 0 && st.BacklogReadings > 0 && s.tokens > 0 {
		bs, err := u.q.Next(ctx, queue.Backlog, u.cfg.BatchMaxReadings, 1)
		for _, b := range bs {
			s.publishBatch(b)
			s.tokens -= float64(b.Readings)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *session) publishBatch(b *queue.Batch) {
	delete(s.committed, b.Seq)
	s.publish(&outMsg{key: msgKey{kindBatch, b.Seq}, lane: b.Lane, readings: b.Readings}, s.u.topics.telemetry, b.Payload)
}

// publish sends one QoS 1 message and arranges for its PUBACK (or error)
// to arrive on s.results.
func (s *session) publish(m *outMsg, topic string, payload []byte) {
	m.sent = time.Now()
	s.outstanding[m.key] = m
	s.u.m.inflight.Set(float64(len(s.outstanding)))
	tok := s.c.Publish(topic, 1, false, payload)
	go func() {
		select {
		case <-tok.Done():
			select {
			case s.results <- pubResult{m, tok.Error()}:
			case <-s.done:
			}
		case <-s.done:
		}
	}()
}

func (s *session) complete(r pubResult) error {
	if r.err != nil {
		return fmt.Errorf("cannot publish %s %d: %w", kindName(r.msg.key.kind), r.msg.key.seq, r.err)
	}
	delete(s.outstanding, r.msg.key)
	s.u.m.inflight.Set(float64(len(s.outstanding)))
	switch r.msg.key.kind {
	case kindBatch:
		s.puback(r.msg)
		lane := r.msg.lane.String()
		s.u.m.batches.WithLabelValues(lane).Inc()
		s.u.m.readings.WithLabelValues(lane).Add(float64(r.msg.readings))
		s.u.m.latency.Observe(time.Since(r.msg.sent).Seconds())
	case kindEvent:
		s.u.q.AckEvent(r.msg.key.seq)
		s.ackedEvents[r.msg.key.seq] = true
		s.u.m.events.Inc()
	}
	return nil
}

func kindName(k msgKind) string {
	if k == kindEvent {
		return "event"
	}
	return "batch"
}

func (s *session) checkTimeouts() error {
	for _, m := range s.outstanding {
		if time.Since(m.sent) > s.u.cfg.PublishTimeout {
			return fmt.Errorf("no PUBACK for %s %d within %s", kindName(m.key.kind), m.key.seq, s.u.cfg.PublishTimeout)
		}
	}
	return nil
}

// shutdown lets outstanding PUBACKs arrive for a moment, then announces
// the gateway offline. Unacknowledged batches stay in the queue.
func (s *session) shutdown() {
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for len(s.outstanding) > 0 {
		select {
		case r := <-s.results:
			if s.complete(r) != nil {
				return
			}
		case <-s.lost:
			return
		case <-deadline.C:
			return
		}
	}
	if err := s.publishStatus(protocol.StateOffline, "shutdown", 2*time.Second); err != nil {
		s.u.log.Warn("cannot announce shutdown", "err", err)
	}
	s.c.Disconnect(250)
}
