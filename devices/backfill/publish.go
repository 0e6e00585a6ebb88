package backfill

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// publisher sends telemetry batches QoS 1 and keeps at most window of
// them waiting for their PUBACK.
type publisher struct {
	client  paho.Client
	topic   string
	window  int
	timeout time.Duration
	pending []pendingBatch
}

type pendingBatch struct {
	seq   uint64
	token paho.Token
}

func connect(ctx context.Context, o *Options) (*publisher, error) {
	opts := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetUsername(o.Username).
		SetPassword(o.Password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(o.Timeout).
		SetWriteTimeout(o.Timeout).
		SetKeepAlive(30 * time.Second)
	c := paho.NewClient(opts)
	t := c.Connect()
	if err := waitToken(ctx, t, o.Timeout); err != nil {
		return nil, fmt.Errorf("cannot connect to broker %q as %q: %w", o.Broker, o.Username, err)
	}
	return &publisher{client: c, topic: o.Gateway.Topic(telemetryKind), window: o.Window, timeout: o.Timeout}, nil
}

// publish sends one batch, first waiting for the oldest PUBACK when the
// window is full.
func (p *publisher) publish(ctx context.Context, seq uint64, payload []byte) error {
	for len(p.pending) >= p.window {
		if err := p.waitOldest(ctx); err != nil {
			return err
		}
	}
	if !p.client.IsConnectionOpen() {
		return fmt.Errorf("cannot publish batch %d: connection to the broker lost", seq)
	}
	p.pending = append(p.pending, pendingBatch{seq: seq, token: p.client.Publish(p.topic, 1, false, payload)})
	return nil
}

func (p *publisher) waitOldest(ctx context.Context) error {
	b := p.pending[0]
	p.pending = p.pending[1:]
	if err := waitToken(ctx, b.token, p.timeout); err != nil {
		return fmt.Errorf("cannot publish batch %d to %q: %w", b.seq, p.topic, err)
	}
	return nil
}

// flush waits for every outstanding PUBACK.
func (p *publisher) flush(ctx context.Context) error {
	for len(p.pending) > 0 {
		if err := p.waitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (p *publisher) close() { p.client.Disconnect(250) }

// waitToken waits for a paho token, the timeout or ctx.
func waitToken(ctx context.Context, t paho.Token, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-timer.C:
		return fmt.Errorf("no acknowledgement within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}
