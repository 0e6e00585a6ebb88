package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
	"github.com/plantroom/plantroom/protocol"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Test organisation: gw-garden-1 (acme/garden) with three devices and
// gw-tower-1 (acme/tower) with one. garden-pump-2 polls every 200 ms so the
// stale detection can be watched; the others poll hourly.
func testOrg(t testing.TB) *config.Org {
	t.Helper()
	hash := func(id string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(id+"-secret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	hour := config.D(time.Hour)
	return &config.Org{Companies: []config.Company{{ID: "acme", Name: "Acme", Projects: []config.Project{
		{ID: "garden", Gateways: []config.Gateway{{ID: "gw-garden-1", PasswordHash: hash("gw-garden-1"), Devices: []config.Device{
			{ID: "garden-meter-main", Kind: "meter", PollInterval: hour},
			{ID: "garden-pump-1", Kind: "pump", PollInterval: hour},
			{ID: "garden-pump-2", Kind: "pump", PollInterval: config.D(200 * time.Millisecond)},
		}}}},
		{ID: "tower", Gateways: []config.Gateway{{ID: "gw-tower-1", PasswordHash: hash("gw-tower-1"), Devices: []config.Device{
			{ID: "tower-meter-main", Kind: "meter", PollInterval: hour},
		}}}},
	}}}}
}

var (
	garden = protocol.GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	tower  = protocol.GatewayRef{Company: "acme", Project: "tower", Gateway: "gw-tower-1"}
)

// testLogger writes warnings and errors to stderr (visible with -v).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu       sync.Mutex
	batches  []*protocol.Batch
	statuses []protocol.Status
	events   []protocol.Event
	check    func(b *protocol.Batch) // called inside ObserveBatch
}

func (r *recorder) ObserveBatch(_ context.Context, _ config.GatewayInfo, b *protocol.Batch, _ time.Time) {
	if r.check != nil {
		r.check(b)
	}
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
}

func (r *recorder) ObserveStatus(_ context.Context, _ config.GatewayInfo, s protocol.Status, _ time.Time) {
	r.mu.Lock()
	r.statuses = append(r.statuses, s)
	r.mu.Unlock()
}

func (r *recorder) ObserveEvent(_ context.Context, _ config.GatewayInfo, e protocol.Event, _ time.Time) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) eventKinds(device string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Device == device {
			out = append(out, e.Kind)
		}
	}
	return out
}

// env is a broker, a ClickHouse database and an ingest wired together.
type env struct {
	t        testing.TB
	org      *config.Org
	db       *store.DB
	broker   *broker.Broker
	ingest   *Ingest
	obs      *recorder
	reg      *prometheus.Registry
	cfg      Config
	chAddr   string
	brokerPW string
}

type envOptions struct {
	ingest   func(*Config)
	broker   func(*broker.Config)
	chAddr   string // ClickHouse address for the ingest (a proxy); default the test server
	store    func(*store.Options)
	noIngest bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, org: testOrg(t), obs: &recorder{}}
	_, dbName := chtest.NewDatabase(t)
	ch := chtest.Addr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	so := store.Options{Addr: ch.Addr, User: ch.User, Password: ch.Password, Database: dbName}
	if o.store != nil {
		o.store(&so)
	}
	db, err := store.Open(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.db = db
	e.chAddr = ch.Addr
	if o.chAddr != "" {
		e.chAddr = o.chAddr
	}

	bcfg := broker.Config{
		Listen: "127.0.0.1:0", Org: e.org, Logger: testLogger(),
		// A service that may publish anywhere, to inject what a broker
		// without our ACL would let through.
		Services: []broker.Service{{Username: "injector", PasswordHash: "sha256:" + sha256hex("injector-secret"),
			Publish: []string{"plantroom/v2/#"}}},
	}
	if o.broker != nil {
		o.broker(&bcfg)
	}
	b, err := broker.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := b.AddInternalService("plantroom-ingest")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	e.broker, e.brokerPW = b, pw

	e.cfg = Config{
		Org:              e.org,
		MQTT:             MQTTConfig{URL: "tcp://" + b.Addr(), Username: "plantroom-ingest", Password: pw, ClientID: "plantroom-ingest-1"},
		FlushInterval:    50 * time.Millisecond,
		Observers:        []Observer{e.obs},
		Logger:           testLogger(),
		MaxRetryInterval: 200 * time.Millisecond,
	}
	if o.ingest != nil {
		o.ingest(&e.cfg)
	}
	if !o.noIngest {
		e.startIngest()
	}
	return e
}

// startIngest starts a (new) ingest with e.cfg against e.chAddr.
func (e *env) startIngest() *Ingest {
	e.t.Helper()
	e.ingest = e.startIngestWith(e.cfg)
	return e.ingest
}

// startIngestWith starts another ingest with cfg against e.chAddr.
func (e *env) startIngestWith(cfg Config) *Ingest {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := e.db
	if e.chAddr != st.Options().Addr {
		ch := chtest.Addr(e.t)
		var err error
		st, err = store.Open(ctx, store.Options{Addr: e.chAddr, User: ch.User, Password: ch.Password, Database: e.db.Database(), ReadTimeout: 5 * time.Second, DialTimeout: 2 * time.Second})
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { st.Close() })
	}
	cfg.Store = st
	cfg.Registerer = prometheus.NewRegistry()
	in, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := in.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(in.Stop)
	select {
	case <-in.Ready():
	case <-ctx.Done():
		e.t.Fatal("ingest not subscribed")
	}
	return in
}

// gateway connects as a gateway of the org.
func (e *env) gateway(ref protocol.GatewayRef, clientID string, mutate func(*paho.ClientOptions)) paho.Client {
	e.t.Helper()
	return connect(e.t, e.broker.Addr(), ref.Gateway, ref.Gateway+"-secret", clientID, mutate)
}

func connect(t testing.TB, addr, user, password, clientID string, mutate func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetUsername(user).SetPassword(password).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(10 * time.Second)
	if mutate != nil {
		mutate(opts)
	}
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %q: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func publish(t testing.TB, c paho.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %q: %v", topic, tok.Error())
	}
}

func encode(t testing.TB, b *protocol.Batch) []byte {
	t.Helper()
	p, err := protocol.AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// energyAt is the test's kWh counter of the device with index di at ts.
func energyAt(di int, ts int64) float64 { return float64(di*1000) + float64(ts-valueBase)/1e6 }

var valueBase = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// makeBatch builds a batch of n readings per device, one every 10 s from
// start: an energy counter (energyAt) and a power value.
func makeBatch(gw string, seq uint64, start time.Time, devices []string, n int) *protocol.Batch {
	b := &protocol.Batch{Epoch: 1, Gateway: gw, Seq: seq, SentAt: start.Add(time.Duration(n) * 10 * time.Second).UnixMilli()}
	for di, d := range devices {
		for i := 0; i < n; i++ {
			ts := start.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
			b.Readings = append(b.Readings,
				protocol.Reading{Device: d, Metric: "energy_import_kwh", TS: ts, Value: energyAt(di, ts)},
				protocol.Reading{Device: d, Metric: "power_w", TS: ts, Value: float64(100*di + i%50)})
		}
	}
	return b
}

func (e *env) count(query string, args ...any) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := e.db.Conn().QueryRow(ctx, query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// stored is the number of distinct readings stored.
func (e *env) stored() uint64 { return e.count("SELECT count() FROM readings FINAL") }

// hourly renders the roll-up, one line per device, metric and hour.
func (e *env) hourly() string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := e.db.Conn().Query(ctx, `SELECT device, metric, hour_ms, minMerge(min_v), maxMerge(max_v),
    argMinMerge(first_v), argMaxMerge(last_v), uniqExactMerge(n)
FROM readings_hourly GROUP BY company, project, device, metric, hour_ms ORDER BY device, metric, hour_ms`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var sb strings.Builder
	for rows.Next() {
		var d, m string
		var h int64
		var mn, mx, first, last float64
		var n uint64
		if err := rows.Scan(&d, &m, &h, &mn, &mx, &first, &last, &n); err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(&sb, "%s %s %d %g %g %g %g %d\n", d, m, h, mn, mx, first, last, n)
	}
	return sb.String()
}

func (e *env) metric(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func (e *env) rejectedMessages(cause string) float64 {
	return e.metric(e.ingest.metrics.rejectedMessages.WithLabelValues(cause))
}

func (e *env) rejectedReadings(cause string) float64 {
	return e.metric(e.ingest.metrics.rejectedReadings.WithLabelValues(cause))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStored waits until want distinct readings are stored and every ingest
// given has acknowledged everything, that is, until every insert (with its
// materialized-view part) has returned.
func (e *env) waitStored(timeout time.Duration, want uint64, ins ...*Ingest) {
	e.t.Helper()
	waitFor(e.t, timeout, fmt.Sprintf("%d readings stored and acknowledged", want), func() bool {
		for _, in := range ins {
			if e.metric(in.metrics.unacked) != 0 {
				return false
			}
		}
		return e.stored() == want
	})
}
