package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/plantroom/plantroom/protocol"
)

// MQTTConfig says how the ingest reaches the broker.
type MQTTConfig struct {
	// URL of the broker: tcp://host:port, or ssl://host:port for TLS.
	URL      string
	Username string
	Password string
	// ClientID must be stable per replica: the broker keeps the replica's
	// session (subscriptions and unacknowledged messages) under it.
	ClientID string
	// SharedGroup, if set, subscribes as "$share/<group>/<filter>" so that
	// replicas using the same group split the messages.
	SharedGroup string
	TLS         *tls.Config
	// ConnectTimeout bounds Start's wait for the first connection and
	// subscription (default 10s); KeepAlive is the MQTT keepalive (30s).
	ConnectTimeout, KeepAlive time.Duration
}

func (c *MQTTConfig) check() error {
	if c.URL == "" {
		return errors.New("no MQTT broker URL")
	}
	if c.ClientID == "" {
		return errors.New("no MQTT client id")
	}
	if strings.ContainsAny(c.SharedGroup, "/+#") {
		return fmt.Errorf("invalid shared subscription group %q: no '/', '+' or '#'", c.SharedGroup)
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	return nil
}

// Filters are the ingest's subscriptions: protocol version 2, and version 1
// for gateways not yet upgraded (protocol/README.md, section 8).
func (c *MQTTConfig) Filters() []string {
	var out []string
	for _, filter := range []func(protocol.Kind) string{protocol.SubscriptionFilter, protocol.SubscriptionFilterV1} {
		for _, k := range []protocol.Kind{protocol.KindTelemetry, protocol.KindStatus, protocol.KindEvents} {
			f := filter(k)
			if c.SharedGroup != "" {
				f = "$share/" + c.SharedGroup + "/" + f
			}
			out = append(out, f)
		}
	}
	return out
}

// subscriber is the ingest's MQTT client.
type subscriber struct {
	in     *Ingest
	client paho.Client
}

func newSubscriber(in *Ingest) *subscriber {
	s := &subscriber{in: in}
	c := in.cfg.MQTT
	opts := paho.NewClientOptions().
		AddBroker(c.URL).
		SetClientID(c.ClientID).
		SetUsername(c.Username).
		SetPassword(c.Password).
		SetProtocolVersion(4).
		SetCleanSession(false).   // the broker keeps what we have not acknowledged
		SetAutoAckDisabled(true). // acknowledged after the ClickHouse commit
		SetOrderMatters(false).   // handlers in their own goroutines: see the package doc
		SetKeepAlive(c.KeepAlive).
		SetPingTimeout(min(10*time.Second, c.KeepAlive)).
		SetWriteTimeout(10 * time.Second).
		SetConnectTimeout(c.ConnectTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { in.handle(m) }).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			in.metrics.connected.Set(0)
			in.metrics.connectionLosses.Inc()
			in.log.Warn("lost the MQTT broker; reconnecting", "broker", c.URL, "error", err)
		})
	if c.TLS != nil {
		opts.SetTLSConfig(c.TLS)
	}
	s.client = paho.NewClient(opts)
	return s
}

func (s *subscriber) connect(ctx context.Context) error {
	s.client.Connect() // with ConnectRetry the token completes only once connected
	t := time.NewTimer(s.in.cfg.MQTT.ConnectTimeout)
	defer t.Stop()
	select {
	case <-s.in.ready:
		return nil
	case <-t.C:
		return fmt.Errorf("not subscribed after %s", s.in.cfg.MQTT.ConnectTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// onConnect (re)subscribes. With a persistent session the broker still has
// the subscriptions; subscribing again is harmless and covers a broker that
// lost its state.
func (s *subscriber) onConnect(c paho.Client) {
	s.in.metrics.connected.Set(1)
	go s.subscribe(c)
}

// subscribe subscribes, retrying while the broker refuses. A broker can
// refuse a SUBSCRIBE right after a session resumes: the embedded broker
// (mochi 2.7.9) refuses one whose packet id equals that of a message it is
// still redelivering from the session. The session's subscriptions are in
// place meanwhile, and the retry succeeds once those messages are
// acknowledged.
func (s *subscriber) subscribe(c paho.Client) {
	cfg := &s.in.cfg.MQTT
	filters := map[string]byte{}
	for _, f := range cfg.Filters() {
		filters[f] = 1
	}
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tok := c.SubscribeMultiple(filters, nil)
		var problem string
		switch {
		case !tok.WaitTimeout(cfg.ConnectTimeout):
			problem = "subscription not confirmed"
		case tok.Error() != nil:
			problem = tok.Error().Error()
		default:
			for f, code := range tok.(*paho.SubscribeToken).Result() {
				if code > 2 {
					problem = fmt.Sprintf("broker refused %q with code %#x", f, code)
				}
			}
		}
		if problem == "" {
			s.in.log.Info("ingest subscribed", "broker", cfg.URL, "client_id", cfg.ClientID, "filters", strings.Join(cfg.Filters(), " "))
			s.in.readyOnce.Do(func() { close(s.in.ready) })
			return
		}
		if !c.IsConnectionOpen() {
			return // onConnect runs again after the reconnect
		}
		if attempt == 10 {
			s.in.log.Error("cannot subscribe; check the ingest's credentials and the broker's ACL; still retrying",
				"broker", cfg.URL, "user", cfg.Username, "problem", problem)
		}
		select {
		case <-time.After(backoff):
		case <-s.in.stopping:
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// publish sends a downlink message (QoS 1, not retained) without waiting:
// a lost ack costs the gateway one re-send. Failures are counted.
func (s *subscriber) publish(topic string, payload []byte) {
	tok := s.client.Publish(topic, 1, false, payload)
	go func() {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			s.in.metrics.ackErrors.Inc()
			if s.in.rejects.first("ack_publish") {
				s.in.log.Warn("cannot publish a commit acknowledgement; check that the ingest's broker user may publish to plantroom/v2/+/+/+/down/ack (the gateway re-sends the batch meanwhile); further failures are only counted",
					"topic", topic, "error", tok.Error(), "metric", "plantroom_ingest_ack_errors_total")
			}
		}
	}()
}

// Publish sends a downlink message (QoS 1, not retained) on the ingest's
// connection and returns once the broker has taken it (PUBACK), or with an
// error when it refuses, the ingest is not connected or ctx ends first.
// The cloud's commands go out this way (cloud/command).
func (in *Ingest) Publish(ctx context.Context, topic string, payload []byte) error {
	if !in.started.Load() || in.sub == nil {
		return fmt.Errorf("cannot publish to %q: the ingest is not running", topic)
	}
	if !in.sub.client.IsConnectionOpen() {
		return fmt.Errorf("cannot publish to %q: not connected to the broker %s", topic, in.cfg.MQTT.URL)
	}
	tok := in.sub.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("cannot publish to %q: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot publish to %q: no PUBACK from the broker: %w", topic, ctx.Err())
	}
}

func (s *subscriber) disconnect() {
	s.client.Disconnect(500)
	s.in.metrics.connected.Set(0)
}

// SetBrokerURL changes the broker URL before Start (the in-process broker's
// port is known only once it listens).
func (in *Ingest) SetBrokerURL(url string) {
	in.cfg.MQTT.URL = url
	in.sub = newSubscriber(in)
}
