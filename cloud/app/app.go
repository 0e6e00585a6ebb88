package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/buildinfo"
)

// Component is a part of the cloud with a lifecycle. Start returns once the
// component runs (listeners bound, connections made); Stop is idempotent
// and waits for the component's goroutines.
type Component interface {
	Start(ctx context.Context) error
	Stop()
}

// Options are what other packages contribute before the app is built.
type Options struct {
	Logger *slog.Logger
	// Migrations of other components (alarms, work orders), applied after
	// the readings schema.
	Migrations []store.Migration
}

// App is a configured cloud process: the shared resources and the
// components it runs. Other packages build their components from its
// fields and register them with Add before Run.
type App struct {
	Config   *Config
	Bundle   *config.Bundle
	Log      *slog.Logger
	Registry *prometheus.Registry
	// DB is the ClickHouse database; nil when no component of this process
	// needs it (a broker-only process).
	DB *store.DB
	// Broker is the embedded broker, when this process runs it.
	Broker *broker.Broker
	// Ingest is the ingest, when this process runs it.
	Ingest *ingest.Ingest
	// Latest and Presence are kept by the ingest when it runs here, and
	// refreshed from ClickHouse otherwise (an API-only process).
	Latest   *ingest.Latest
	Presence *ingest.Presence

	components []named
}

type named struct {
	name string
	c    Component
}

// New loads the organisation, connects to ClickHouse and migrates the
// schema (waiting for ClickHouse until ctx ends), and builds the broker and
// the ingest as configured.
func New(ctx context.Context, cfg *Config, o Options) (*App, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	bundle, err := config.LoadBundle(cfg.Org, cfg.Tariffs, cfg.Templates, cfg.Rules)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Bundle: bundle, Log: log, Registry: prometheus.NewRegistry()}
	for _, w := range DemoCredentialWarnings(cfg, bundle) {
		log.Warn("DEMO CREDENTIAL ON A NON-LOOPBACK LISTENER: anyone who has read README.md can sign in; change it (bin/cloud hash-password / hash-token) or listen on 127.0.0.1 only", "credential", w)
	}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Collector("cloud"))
	a.Latest = ingest.NewLatest()
	a.Latest.Declare(&a.Bundle.Org, a.Bundle.Templates)
	a.Presence = ingest.NewPresence(&bundle.Org, cfg.Ingest.StaleAfterIntervals)
	a.Presence.MinStale = cfg.Ingest.StaleAfterMin.Duration

	if cfg.Metrics.Listen != "off" {
		a.components = append(a.components, named{"metrics", newMetricsServer(cfg.Metrics.Listen, a.Registry, log)})
	}
	if cfg.Has(ComponentIngest) || cfg.Has(ComponentAPI) {
		if a.DB, err = OpenStore(ctx, cfg, log); err != nil {
			return nil, err
		}
		if err := a.DB.Migrate(ctx, o.Migrations...); err != nil {
			a.DB.Close()
			return nil, err
		}
	}
	if err := a.build(); err != nil {
		if a.DB != nil {
			a.DB.Close()
		}
		return nil, err
	}
	return a, nil
}

func (a *App) build() error {
	cfg := a.Config
	var internalPW string
	if cfg.EmbeddedBroker() {
		b, err := broker.New(broker.Config{
			Listen: cfg.Broker.Listen, TLSListen: cfg.Broker.TLSListen, TLSCert: cfg.Broker.TLSCert, TLSKey: cfg.Broker.TLSKey,
			Org: &a.Bundle.Org, Services: cfg.Broker.EnabledServices(), MaxPending: cfg.Broker.MaxPending, StorePath: cfg.Broker.StorePath,
			SessionExpiry: cfg.Broker.SessionExpiry.Duration,
			Logger:        a.Log.With("component", "broker"), Registerer: a.Registry,
		})
		if err != nil {
			return err
		}
		if cfg.IngestInProcess() {
			if internalPW, err = b.AddInternalService(InternalService); err != nil {
				return err
			}
		}
		if cfg.Broker.StorePath == "" {
			// Version-2 gateways keep every batch until its commit
			// acknowledgement, so a broker that forgets costs them a
			// re-send; only version-1 gateways (the ingest warns about
			// each) trust the broker's PUBACK.
			a.Log.Info("broker.store_path is empty: sessions and queued messages live in memory; a crash or restart makes version-2 gateways re-send what was not yet committed, and loses what the broker acknowledged to version-1 gateways but had not delivered (docs/cloud.md)", "component", "broker")
		}
		a.Broker = b
		a.components = append(a.components, named{ComponentBroker, b})
	}
	if cfg.Has(ComponentIngest) {
		mq, err := a.ingestMQTT(internalPW)
		if err != nil {
			return err
		}
		var connected func(string) bool
		if a.Broker != nil {
			connected = a.Broker.GatewayConnected
		}
		in, err := ingest.New(ingest.Config{
			Org: &a.Bundle.Org, Templates: a.Bundle.Templates, Store: a.DB, MQTT: mq,
			FlushRows: cfg.Ingest.FlushRows, FlushInterval: cfg.Ingest.FlushInterval.Duration,
			MaxUnacked: cfg.Ingest.MaxUnackedMessages, MaxFutureSkew: cfg.Ingest.MaxFutureSkew.Duration,
			MaxAge:              cfg.Ingest.MaxAge.Duration,
			StaleAfterIntervals: cfg.Ingest.StaleAfterIntervals, LatestLookback: cfg.Ingest.LatestLookback.Duration,
			Latest: a.Latest, Presence: a.Presence, GatewayConnected: connected,
			Logger: a.Log.With("component", "ingest"), Registerer: a.Registry,
		})
		if err != nil {
			return err
		}
		a.Ingest = in
		a.components = append(a.components, named{ComponentIngest, in})
	} else if a.DB != nil {
		a.components = append(a.components, named{"cache", &cacheRefresher{app: a, every: 10 * time.Second}})
	}
	return nil
}

// ingestMQTT is how the ingest reaches its broker: this process's embedded
// broker with the internal credential, or broker.external.
func (a *App) ingestMQTT(internalPW string) (ingest.MQTTConfig, error) {
	cfg := a.Config
	if cfg.IngestInProcess() {
		// The URL is known once the broker listens; see Run.
		return ingest.MQTTConfig{URL: "tcp://" + loopback(cfg.Broker.Listen), Username: InternalService,
			Password: internalPW, ClientID: InternalService + "-ingest"}, nil
	}
	e := cfg.Broker.External
	mq := ingest.MQTTConfig{URL: e.URL, Username: e.Username, Password: e.Password, ClientID: cfg.Ingest.ClientID, SharedGroup: e.SharedGroup}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return mq, fmt.Errorf("cannot read broker.external.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return mq, fmt.Errorf("cannot use broker.external.ca_file %q: no PEM certificates in it", e.CAFile)
		}
		mq.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return mq, nil
}

// ExternalBroker is how this process reaches broker.external (URL,
// credentials, TLS), for the parts that share it with the ingest (the
// alarm lease).
func (a *App) ExternalBroker() (ingest.MQTTConfig, error) {
	if a.Config.Broker.External.URL == "" {
		return ingest.MQTTConfig{}, errors.New("no broker.external configured")
	}
	return a.ingestMQTT("")
}

// loopback turns a listen address into one to dial: an unspecified host
// becomes 127.0.0.1.
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Add registers a component (the API, the alarm engine). Components start
// in the order added, after the broker; the ingest starts after all of
// them, so its observers run before data flows. They stop in reverse.
func (a *App) Add(name string, c Component) {
	a.components = append(a.components, named{name, c})
}

// AddObserver registers an ingest observer; false when this process runs
// no ingest.
func (a *App) AddObserver(o ingest.Observer) bool {
	if a.Ingest == nil {
		return false
	}
	a.Ingest.AddObserver(o)
	return true
}

// Run starts the components, waits for ctx to end, and stops them in
// reverse order. A component that fails to start stops those already
// started and Run returns its error.
func (a *App) Run(ctx context.Context) error {
	defer func() {
		if a.DB != nil {
			a.DB.Close()
		}
	}()
	var started []named
	stopAll := func() {
		for _, n := range slices.Backward(started) {
			n.c.Stop()
		}
	}
	// The ingest starts last and stops first: every other component (the
	// alarm engine observing it, the API) is running while data flows.
	order := make([]named, 0, len(a.components))
	for _, n := range a.components {
		if n.name != ComponentIngest {
			order = append(order, n)
		}
	}
	for _, n := range a.components {
		if n.name == ComponentIngest {
			order = append(order, n)
		}
	}
	for _, n := range order {
		if n.name == ComponentIngest && a.Broker != nil && a.Config.IngestInProcess() {
			// Dial the port the broker actually bound (listen may say :0).
			a.Ingest.SetBrokerURL("tcp://" + loopback(a.Broker.Addr()))
		}
		if err := n.c.Start(ctx); err != nil {
			stopAll()
			if ctx.Err() != nil {
				return nil // asked to stop while starting
			}
			return fmt.Errorf("cannot start %s: %w", n.name, err)
		}
		started = append(started, n)
		a.Log.Info("started", "component", n.name)
	}
	<-ctx.Done()
	a.Log.Info("stopping")
	stopAll()
	return nil
}

// OpenStore connects to ClickHouse, retrying with backoff until ctx ends.
func OpenStore(ctx context.Context, cfg *Config, log *slog.Logger) (*store.DB, error) {
	ch := cfg.ClickHouse
	opts := store.Options{Addr: ch.Addr, Database: ch.Database, User: ch.User, Password: ch.Password,
		Cluster: ch.Cluster, Schema: store.SchemaOptions{TTLDays: ch.TTLDays}}
	backoff := time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, 30*time.Second)
		db, err := store.Open(attempt, opts)
		cancel()
		if err == nil {
			log.Info("connected to ClickHouse", "addr", ch.Addr, "database", ch.Database, "server", db.Server().String())
			return db, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(err, ctx.Err())
		}
		log.Warn("ClickHouse not reachable; retrying", "addr", ch.Addr, "error", err, "retry_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Migrate connects to ClickHouse and applies the readings schema and
// o.Migrations, for `cloud migrate`.
func Migrate(ctx context.Context, cfg *Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	db, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Migrate(ctx, o.Migrations...)
}
