package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/config"
)

// testOrg has two gateways in two projects; their passwords are
// "<id>-secret".
func testOrg(t testing.TB) *config.Org {
	t.Helper()
	hash := func(id string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(id+"-secret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return &config.Org{Companies: []config.Company{{ID: "acme", Name: "Acme", Projects: []config.Project{
		{ID: "garden", Gateways: []config.Gateway{{ID: "gw-garden-1", PasswordHash: hash("gw-garden-1")}}},
		{ID: "tower", Gateways: []config.Gateway{{ID: "gw-tower-1", PasswordHash: hash("gw-tower-1")}}},
	}}}}
}

type testBroker struct {
	*Broker
	reg      *prometheus.Registry
	ingestPW string
}

func startBroker(t testing.TB, mutate func(*Config)) *testBroker {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Listen:     "127.0.0.1:0",
		Org:        testOrg(t),
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registerer: reg,
		Services: []Service{{Username: "tool", PasswordHash: "sha256:" + sha256hex("tool-secret"),
			Subscribe: []string{"plantroom/v2/acme/+/+/status"}, Publish: []string{"plantroom/v2/+/+/+/down/#"}}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := b.AddInternalService("ingest")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return &testBroker{Broker: b, reg: reg, ingestPW: pw}
}

func (b *testBroker) denied(t *testing.T, reason string) float64 {
	t.Helper()
	var m dto.Metric
	if err := b.access.metrics.denied.WithLabelValues(reason).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

type clientOpts struct {
	user, password, id string
	clean              bool
	manualAck          bool
	will               string
	tls                *tls.Config
	handler            paho.MessageHandler
}

func dial(t testing.TB, addr string, o clientOpts) (paho.Client, error) {
	t.Helper()
	return dialWith(t, addr, o, nil)
}

func dialWith(t testing.TB, addr string, o clientOpts, mutate func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	scheme := "tcp://"
	if o.tls != nil {
		scheme = "ssl://"
	}
	opts := paho.NewClientOptions().AddBroker(scheme + addr).
		SetClientID(o.id).SetUsername(o.user).SetPassword(o.password).
		SetCleanSession(o.clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(false).SetAutoAckDisabled(o.manualAck).
		SetTLSConfig(o.tls).SetProtocolVersion(4)
	if o.will != "" {
		opts.SetWill(o.will, `{"v":1,"state":"offline"}`, 1, true)
	}
	if o.handler != nil {
		opts.SetDefaultPublishHandler(o.handler)
	}
	if mutate != nil {
		mutate(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func mustDial(t testing.TB, addr string, o clientOpts) paho.Client {
	t.Helper()
	c, err := dial(t, addr, o)
	if err != nil {
		t.Fatalf("connect as %q (client %q): %v", o.user, o.id, err)
	}
	return c
}

// inbox collects received messages.
type inbox struct {
	mu   sync.Mutex
	msgs []paho.Message
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

func (b *inbox) topics() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, m := range b.msgs {
		out[m.Topic()]++
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func subscribe(t testing.TB, c paho.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[stripShare(filter)] // paho keys shared subscriptions without "$share/<group>/"
}

func publish(t testing.TB, c paho.Client, topic string, payload string) error {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("publish to %q not acknowledged", topic)
	}
	return tok.Error()
}

const (
	gardenTelemetry = "plantroom/v2/acme/garden/gw-garden-1/telemetry"
	towerTelemetry  = "plantroom/v2/acme/tower/gw-tower-1/telemetry"
)

func TestGatewayPublishesOnlyUnderItsOwnPrefix(t *testing.T) {
	b := startBroker(t, nil)
	var in inbox
	mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-1", clean: true, handler: in.handler})
	sub := mustDial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "ingest-2", clean: true, handler: in.handler})
	if code := subscribe(t, sub, "plantroom/v2/#"); code != 1 {
		t.Fatalf("service subscription granted %#x", code)
	}
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	if err := publish(t, gw, gardenTelemetry, "own"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gateway's own message", func() bool { return in.len() == 1 })

	// Publishing under another project's prefix: MQTT 3.1.1 has no negative
	// PUBACK, so the broker drops the connection and delivers nothing.
	_ = publish(t, gw, towerTelemetry, "forged")
	waitFor(t, "the forging gateway to be disconnected", func() bool { return !gw.IsConnectionOpen() })
	if got := b.denied(t, DenyPublish); got != 1 {
		t.Errorf("denied{publish} = %v, want 1", got)
	}
	// A later, legitimate message still arrives and the forged one never did.
	gw2 := mustDial(t, b.Addr(), clientOpts{user: "gw-tower-1", password: "gw-tower-1-secret", id: "gw-tower-1", clean: true})
	if err := publish(t, gw2, towerTelemetry, "real"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tower gateway's message", func() bool { return in.len() == 2 })
	in.mu.Lock()
	for _, m := range in.msgs {
		if string(m.Payload()) == "forged" {
			t.Errorf("forged message delivered on %q", m.Topic())
		}
	}
	in.mu.Unlock()
}

func TestGatewaySubscribesOnlyUnderItsOwnPrefix(t *testing.T) {
	b := startBroker(t, nil)
	gw := mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true})
	if code := subscribe(t, gw, "plantroom/v2/acme/garden/gw-garden-1/down/#"); code != 1 {
		t.Errorf("own downlink subscription: %#x, want granted QoS 1", code)
	}
	for _, f := range []string{"plantroom/v2/#", "plantroom/v2/acme/tower/gw-tower-1/down/#", "plantroom/v2/acme/+/+/telemetry",
		"$share/g/plantroom/v2/acme/garden/gw-garden-1/telemetry", "#", "plantroom/v2/acme/garden/gw-garden-1"} {
		if code := subscribe(t, gw, f); code != 0x80 {
			t.Errorf("subscription to %q: %#x, want failure 0x80", f, code)
		}
	}
	if got := b.denied(t, DenySubscribe); got != 6 {
		t.Errorf("denied{subscribe} = %v, want 6", got)
	}
	// The restricted service may read status only, and publish downlinks.
	tool := mustDial(t, b.Addr(), clientOpts{user: "tool", password: "tool-secret", id: "tool-1", clean: true})
	if code := subscribe(t, tool, "plantroom/v2/acme/+/+/status"); code != 1 {
		t.Errorf("tool status subscription: %#x", code)
	}
	if code := subscribe(t, tool, "plantroom/v2/acme/+/+/telemetry"); code != 0x80 {
		t.Errorf("tool telemetry subscription: %#x, want 0x80", code)
	}
	var in inbox
	mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1-down", clean: true, handler: in.handler})
	if err := publish(t, tool, "plantroom/v2/acme/garden/gw-garden-1/down/config", "cfg"); err != nil {
		t.Errorf("tool downlink publish: %v", err)
	}
}

func TestAuthenticationFailures(t *testing.T) {
	b := startBroker(t, nil)
	for _, o := range []clientOpts{
		{user: "gw-garden-1", password: "wrong", id: "gw-garden-1"},
		{user: "nobody", password: "x", id: "nobody"},
		{user: "", password: "", id: "anon"},
		{user: "ingest", password: "gw-garden-1-secret", id: "ingest-x"},
	} {
		if _, err := dial(t, b.Addr(), o); err == nil {
			t.Errorf("user %q with password %q connected", o.user, o.password)
		}
	}
	if got := b.denied(t, DenyCredentials); got != 4 {
		t.Errorf("denied{credentials} = %v, want 4", got)
	}
	// The cached verification is per password: the right one still works
	// after a wrong one, and a wrong one after the right one still fails.
	mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1"})
	if _, err := dial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secreT", id: "gw-garden-1b"}); err == nil {
		t.Error("wrong password accepted after a right one")
	}
}

func TestClientIDsAndWills(t *testing.T) {
	b := startBroker(t, nil)
	// A gateway may not take a service's client id (and with it the
	// service's session and subscriptions).
	if _, err := dial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "ingest-1"}); err == nil {
		t.Error("gateway connected with the ingest's client id")
	}
	// A service's ids start with its user name.
	if _, err := dial(t, b.Addr(), clientOpts{user: "ingest", password: b.ingestPW, id: "gw-garden-1"}); err == nil {
		t.Error("service connected with a client id outside its name")
	}
	// A gateway uses its own id, or its id and a "-suffix": it can neither
	// squat another gateway's id before that gateway's first connection
	// (locking it out) nor hold an id no one can attribute.
	for _, id := range []string{"gw-garden-1", "gw-garden-1x", "edge-box-7", "gw-garden"} {
		if _, err := dial(t, b.Addr(), clientOpts{user: "gw-tower-1", password: "gw-tower-1-secret", id: id, clean: false}); err == nil {
			t.Errorf("gateway gw-tower-1 connected with client id %q", id)
		}
	}
	mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: false}).Disconnect(100)
	mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1-backfill"}).Disconnect(100)
	if got := b.denied(t, DenyClientID); got != 6 {
		t.Errorf("denied{client_id} = %v, want 6", got)
	}
	// A last will outside the gateway's prefix is refused at connect.
	if _, err := dial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", will: "plantroom/v2/acme/tower/gw-tower-1/status"}); err == nil {
		t.Error("gateway connected with a last will on another gateway's topic")
	}
	mustDial(t, b.Addr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", will: "plantroom/v2/acme/garden/gw-garden-1/status"})
	if got := b.denied(t, DenyWill); got != 1 {
		t.Errorf("denied{will} = %v, want 1", got)
	}
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		allowed, filter string
		want            bool
	}{
		{"plantroom/v2/#", "plantroom/v2/acme/garden/gw/telemetry", true},
		{"plantroom/v2/#", "plantroom/v2/+/+/+/telemetry", true},
		{"plantroom/v2/#", "plantroom/v2/#", true},
		{"plantroom/v2/#", "plantroom/v2", true},
		{"plantroom/v2/#", "plantroom/#", false},
		{"plantroom/v2/#", "#", false},
		{"plantroom/v2/#", "other/v1/x", false},
		{"plantroom/v2/+/+/+/status", "plantroom/v2/acme/garden/gw/status", true},
		{"plantroom/v2/+/+/+/status", "plantroom/v2/+/+/+/status", true},
		{"plantroom/v2/+/+/+/status", "plantroom/v2/acme/garden/gw/telemetry", false},
		{"plantroom/v2/+/+/+/status", "plantroom/v2/acme/garden/#", false},
		{"plantroom/v2/acme/+/+/status", "plantroom/v2/+/+/+/status", false},
		{"a/b", "a/b/c", false},
		{"+/b", "$SYS/b", false},
	} {
		if got := covers(tc.allowed, tc.filter); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.allowed, tc.filter, got, tc.want)
		}
	}
	if got := stripShare("$share/ingest/plantroom/v2/+/+/+/telemetry"); got != "plantroom/v2/+/+/+/telemetry" {
		t.Errorf("stripShare = %q", got)
	}
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	b := startBroker(t, func(c *Config) {
		c.Listen = ""
		c.TLSListen, c.TLSCert, c.TLSKey = "127.0.0.1:0", certFile, keyFile
	})
	if b.Addr() != "" || b.TLSAddr() == "" {
		t.Fatalf("Addr %q, TLSAddr %q", b.Addr(), b.TLSAddr())
	}
	gw := mustDial(t, b.TLSAddr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1", clean: true,
		tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err := publish(t, gw, gardenTelemetry, "over tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, b.TLSAddr(), clientOpts{user: "gw-garden-1", password: "gw-garden-1-secret", id: "gw-garden-1x",
		tls: &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}}); err == nil {
		t.Error("connected to the TLS listener without trusting its certificate")
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plantroom test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
