package mqtttest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"
)

// Acker plays the cloud's ingest for the edge's tests: a real MQTT client
// that receives every gateway's telemetry batches (QoS 1) and answers each
// with a commit acknowledgement on the gateway's down/ack topic, as the
// ingest does after its ClickHouse commit. It can stay silent, lose
// acknowledgements and reject seqs.
type Acker struct {
	c paho.Client

	mu       sync.Mutex
	silent   bool
	drop     int               // acknowledgements still to lose
	reject   map[uint64]string // seq → cause
	received []Batch
	acked    int
}

// Batch is one telemetry batch the Acker received.
type Batch struct {
	Gateway protocol.GatewayRef
	Epoch   uint64
	Seq     uint64
	Payload []byte
	At      time.Time
}

// StartAcker connects to url as user (empty: anonymous) and starts
// acknowledging.
func StartAcker(t testing.TB, url, user, password string) *Acker {
	t.Helper()
	a := &Acker{reject: map[uint64]string{}}
	opts := paho.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("test-acker-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(true).SetOrderMatters(false).
		SetConnectTimeout(5 * time.Second).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			// Subscribes again after a broker restart.
			c.Subscribe(protocol.SubscriptionFilter(protocol.KindTelemetry), 1, a.handle)
		})
	a.c = paho.NewClient(opts)
	if tok := a.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("acker cannot connect to %s: %v", url, tok.Error())
	}
	// The subscription of the connect handler: wait until it is in place.
	tok := a.c.Subscribe(protocol.SubscriptionFilter(protocol.KindTelemetry), 1, a.handle)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("acker cannot subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { a.c.Disconnect(100) })
	return a
}

func (a *Acker) handle(_ paho.Client, m paho.Message) {
	ref, _, err := protocol.ParseTopic(m.Topic())
	if err != nil {
		return
	}
	var b protocol.Batch
	if err := protocol.DecodeBatch(m.Payload(), &b); err != nil {
		return
	}
	a.mu.Lock()
	a.received = append(a.received, Batch{Gateway: ref, Epoch: b.Epoch, Seq: b.Seq, Payload: append([]byte(nil), m.Payload()...), At: time.Now()})
	ack := protocol.Ack{Epoch: b.Epoch, TS: time.Now().UnixMilli()}
	if cause, ok := a.reject[b.Seq]; ok {
		ack.Rejected = []protocol.Rejected{{Seq: b.Seq, Cause: cause}}
	} else {
		ack.Committed = []protocol.SeqRange{{b.Seq, b.Seq}}
	}
	send := !a.silent
	if send && a.drop > 0 {
		a.drop--
		send = false
	}
	if send {
		a.acked++
	}
	a.mu.Unlock()
	if send {
		a.c.Publish(ref.DownlinkTopic(protocol.DownAck), 1, false, protocol.EncodeAck(ack))
	}
}

// Silent stops (true) or resumes (false) acknowledging.
func (a *Acker) Silent(on bool) {
	a.mu.Lock()
	a.silent = on
	a.mu.Unlock()
}

// Drop loses the next n acknowledgements.
func (a *Acker) Drop(n int) {
	a.mu.Lock()
	a.drop = n
	a.mu.Unlock()
}

// Reject answers seq with a rejected entry of the given cause.
func (a *Acker) Reject(seq uint64, cause string) {
	a.mu.Lock()
	a.reject[seq] = cause
	a.mu.Unlock()
}

// Send publishes an acknowledgement of its own to ref's down/ack topic.
func (a *Acker) Send(t testing.TB, ref protocol.GatewayRef, ack protocol.Ack) {
	t.Helper()
	if ack.TS == 0 {
		ack.TS = time.Now().UnixMilli()
	}
	a.Publish(t, ref.DownlinkTopic(protocol.DownAck), protocol.EncodeAck(ack))
}

// Publish publishes payload to topic (QoS 1) and waits for the PUBACK.
func (a *Acker) Publish(t testing.TB, topic string, payload []byte) {
	t.Helper()
	tok := a.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot publish to %s: %v", topic, tok.Error())
	}
}

// Received returns the batches received so far, in arrival order.
func (a *Acker) Received() []Batch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Batch(nil), a.received...)
}

// Acked is the number of acknowledgements sent.
func (a *Acker) Acked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}
