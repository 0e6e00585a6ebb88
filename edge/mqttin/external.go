package mqttin

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Timeouts of the external broker connection.
const (
	externalConnectTimeout   = 10 * time.Second
	externalKeepAlive        = 30 * time.Second
	externalSubscribeTimeout = 10 * time.Second
	externalQoS              = 1
)

// external subscribes to the device topics on a site broker. The session is
// clean: after every (re)connect it subscribes to every device topic again.
type external struct {
	in     *Input
	cfg    External
	opts   *paho.ClientOptions
	client paho.Client

	// subMu serialises subscription changes; subscribed is what the
	// broker holds for the current connection.
	subMu      sync.Mutex
	subscribed map[string]bool

	lifeMu sync.Mutex
	closed bool           // set by stop: no connect handler starts after it
	wg     sync.WaitGroup // connect handlers in progress
}

func newExternal(in *Input, cfg External) (*external, error) {
	x := &external{in: in, cfg: cfg, subscribed: map[string]bool{}}
	id := cfg.ClientID
	if id == "" {
		b := make([]byte, 4)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("cannot make MQTT client id: %w", err)
		}
		id = "plantroom-edge-" + hex.EncodeToString(b)
	}
	retry := min(5*time.Second, cfg.MaxReconnectInterval.Duration)
	o := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(id).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(true).
		SetKeepAlive(externalKeepAlive).
		SetConnectTimeout(externalConnectTimeout).
		SetWriteTimeout(externalConnectTimeout).
		SetConnectRetry(true).
		SetConnectRetryInterval(retry).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval.Duration).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			x.in.handle(m.Topic(), m.Payload(), m.Retained())
		}).
		SetOnConnectHandler(x.connected).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			x.in.metrics.connected.Set(0)
			x.in.log.Warn("MQTT site broker connection lost, reconnecting", "broker", cfg.URL, "error", err)
		})
	if cfg.TLS != nil {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	x.opts = o
	return x, nil
}

// tlsConfig loads the CA and client certificate files.
func tlsConfig(cfg External) (*tls.Config, error) {
	t := cfg.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if tc.ServerName == "" {
		if u, err := url.Parse(cfg.URL); err == nil {
			tc.ServerName = u.Hostname()
		}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read MQTT broker CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use MQTT broker CA file %q: no PEM certificates in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load MQTT client certificate %q / key %q: %w", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// start connects in the background; paho retries until it is connected
// or disconnected.
func (x *external) start() error {
	x.client = paho.NewClient(x.opts)
	x.client.Connect()
	x.in.log.Info("MQTT device input connecting to the site broker", "broker", x.cfg.URL)
	return nil
}

func (x *external) stop() {
	x.client.Disconnect(250)
	x.lifeMu.Lock()
	x.closed = true
	x.lifeMu.Unlock()
	x.wg.Wait()
}

// connected subscribes to every device topic; paho calls it after each
// successful (re)connect.
func (x *external) connected(c paho.Client) {
	x.lifeMu.Lock()
	if x.closed {
		x.lifeMu.Unlock()
		return
	}
	x.wg.Add(1)
	x.lifeMu.Unlock()
	defer x.wg.Done()

	x.subMu.Lock()
	defer x.subMu.Unlock()
	x.subscribed = map[string]bool{} // a clean session starts without any
	cur := x.in.table.Load()
	topics := cur.topics()
	if err := x.subscribe(c, topics); err != nil {
		x.in.log.Error("MQTT site broker refused device subscriptions; they are retried at the next reconnect",
			"broker", x.cfg.URL, "error", err)
		return
	}
	x.subscribeAnswers(c, cur)
	x.in.metrics.connected.Set(1)
	x.in.log.Info("MQTT device input connected to the site broker", "broker", x.cfg.URL, "topics", len(topics))
}

// subscribeAnswers subscribes to the answers to the gateway's Shelly
// requests when a Shelly relay may be commanded. A refusal is logged, not
// fatal: the devices' readings do not depend on it, and the state report
// still confirms a command. Call with subMu held.
func (x *external) subscribeAnswers(c paho.Client, cur *routes) {
	t := x.in.rpcTopic()
	if x.subscribed[t] || !x.in.commandsShelly(cur) {
		return
	}
	if err := x.subscribe(c, []string{t}); err != nil {
		x.in.log.Warn("MQTT site broker refused the subscription to the answers of Shelly commands; allow the edge's user to read it (docs/edge.md, \"Site broker ACL\")",
			"broker", x.cfg.URL, "topic", t, "error", err)
	}
}

// update subscribes to the new device topics and unsubscribes from the
// dropped ones. Disconnected, there is nothing to do: the next connect
// subscribes to the current set.
func (x *external) update(_, cur *routes) error {
	x.subMu.Lock()
	defer x.subMu.Unlock()
	if x.client == nil || !x.client.IsConnectionOpen() {
		return nil
	}
	var add, drop []string
	want := map[string]bool{}
	for _, t := range cur.topics() {
		want[t] = true
		if !x.subscribed[t] {
			add = append(add, t)
		}
	}
	for t := range x.subscribed {
		if !want[t] && t != x.in.rpcTopic() { // the answers' subscription stays
			drop = append(drop, t)
		}
	}
	if len(drop) > 0 {
		tok := x.client.Unsubscribe(drop...)
		if err := x.wait(tok, "unsubscribe"); err != nil {
			return fmt.Errorf("cannot unsubscribe from %q: %w", drop, err)
		}
		for _, t := range drop {
			delete(x.subscribed, t)
		}
	}
	if err := x.subscribe(x.client, add); err != nil {
		return err
	}
	x.subscribeAnswers(x.client, cur)
	return nil
}

// subscribe subscribes to topics and records the ones the broker granted.
// Call with subMu held.
func (x *external) subscribe(c paho.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	filters := make(map[string]byte, len(topics))
	for _, t := range topics {
		filters[t] = externalQoS
	}
	tok := c.SubscribeMultiple(filters, nil) // messages go to the default handler
	if err := x.wait(tok, "subscribe"); err != nil {
		return fmt.Errorf("cannot subscribe to %d device topics: %w", len(topics), err)
	}
	var refused []string
	granted := map[string]byte{}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		granted = st.Result()
	}
	for _, t := range topics {
		if q, ok := granted[t]; ok && q == 0x80 {
			refused = append(refused, t)
			continue
		}
		x.subscribed[t] = true
	}
	if len(refused) > 0 {
		return fmt.Errorf("cannot subscribe: broker refused %q", refused)
	}
	return nil
}

func (x *external) publish(topic string, payload []byte) error {
	if x.client == nil || !x.client.IsConnectionOpen() {
		return errNoChannel
	}
	return x.wait(x.client.Publish(topic, externalQoS, false, payload), "publish")
}

// wait waits for a token, at most externalSubscribeTimeout and not past Stop.
func (x *external) wait(tok paho.Token, what string) error {
	t := time.NewTimer(externalSubscribeTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no answer to %s within %s", what, externalSubscribeTimeout)
	case <-x.in.done:
		return errors.New("stopped")
	}
}
