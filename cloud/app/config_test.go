package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/config"
)

func TestLoadDemoConfig(t *testing.T) {
	t.Setenv(EnvClickHouseAddr, "")
	cfg, err := Load("../../configs/cloud.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Has(ComponentBroker) || !cfg.Has(ComponentIngest) || !cfg.Has(ComponentAPI) || !cfg.IngestInProcess() {
		t.Errorf("components %v, in-process ingest %v", cfg.Components, cfg.IngestInProcess())
	}
	if want, _ := filepath.Abs("../../configs/org.yaml"); mustAbs(t, cfg.Org) != want {
		t.Errorf("org path %q, want %q (relative to the config file)", cfg.Org, want)
	}
	if cfg.Ingest.FlushRows != 50000 || cfg.Ingest.FlushInterval.Duration != time.Second || cfg.ClickHouse.Addr != "127.0.0.1:19000" ||
		cfg.ClickHouse.Database != "plantroom" || cfg.Broker.MaxPending != 1000 || cfg.API.Listen != "127.0.0.1:8080" {
		t.Errorf("unexpected values: %+v", cfg)
	}
	// The demo runs the broker without a store: its version-2 edge agents
	// keep every batch until the commit acknowledgement.
	if cfg.Broker.StorePath != "" {
		t.Errorf("broker.store_path %q, want none in the demo", cfg.Broker.StorePath)
	}
	if _, err := config.LoadBundle(cfg.Org, cfg.Tariffs, cfg.Templates, cfg.Rules); err != nil {
		t.Errorf("demo bundle: %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDefaults(t *testing.T) {
	c := &Config{Org: "o", Tariffs: "t", Templates: "d"}
	if err := validate(c); err != nil {
		t.Fatal(err)
	}
	if len(c.Components) != 3 || c.Broker.Listen != DefaultBrokerListen || c.Metrics.Listen != DefaultMetricsListen ||
		c.Ingest.FlushRows != 50000 || c.Ingest.FlushInterval.Duration != time.Second || c.Ingest.MaxFutureSkew.Duration != 5*time.Minute ||
		c.Ingest.StaleAfterIntervals != 3 || c.ClickHouse.Addr != DefaultClickHouse || c.ClickHouse.Database != "plantroom" ||
		!strings.HasPrefix(c.Ingest.ClientID, "plantroom-ingest-") || c.Photos.Dir != photo.DefaultDir || c.Photos.MaxBytes != 10<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func validate(c *Config) error {
	var p config.Problems
	c.Validate(&p)
	return p.Err()
}

// Every problem is reported, each with its path.
func TestValidationListsEveryProblem(t *testing.T) {
	yes := false
	c := &Config{
		Components: []string{"broker", "ingest", "alarms", "ingest"},
		Log:        Log{Level: "loud", Format: "xml"},
		Broker: Broker{Embedded: &yes, Listen: "1883", TLSCert: "c.pem", MaxPending: -1,
			Services: []broker.Service{{Username: "bad name", PasswordHash: "plain"}, {Username: InternalService, PasswordHash: "$2a$x",
				Subscribe: []string{"a/#/b"}}},
			External: External{URL: "http://broker", SharedGroup: "a/b"}},
		Ingest:     Ingest{FlushRows: -5, FlushInterval: config.D(time.Hour), MaxFutureSkew: config.D(time.Millisecond)},
		ClickHouse: ClickHouse{Addr: "localhost", Database: "plant-room", TTLDays: -1},
		API:        api.Config{Listen: "8080"},
		Photos:     photo.Config{MaxBytes: 100},
		Alarms:     Alarms{Owner: "elected", SLACheckInterval: config.D(-time.Second), RecentWindow: config.D(-time.Hour)},
	}
	err := validate(c)
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		`components[2]: unknown component "alarms"`, `components[3]: component "ingest" listed twice`,
		"org: required", "tariffs: required", "templates: required",
		`log.level: unknown level "loud"`, `log.format: unknown format "xml"`,
		`broker.listen: want host:port, got "1883"`, "broker.tls_listen: required when tls_cert",
		"broker.max_pending: must be >= 0", "broker.services[0].username:", "broker.services[0].password_hash: must be a bcrypt hash",
		`broker.services[1].username: "plantroom-internal" is reserved`, `broker.services[1].subscribe[0]: invalid topic filter "a/#/b"`,
		`broker.external.url: scheme "http" not supported`, "broker.external.shared_group:",
		"ingest.flush_rows: must be between 1 and 1000000, got -5", "ingest.flush_interval: must be between",
		"ingest.max_future_skew: must be between", `clickhouse.addr: want host:port, got "localhost"`,
		`clickhouse.database: invalid name "plant-room"`, "clickhouse.ttl_days: must be >= 0", `api.listen: invalid address "8080"`,
		"photos.max_bytes: must be at least 1024 bytes, got 100",
		`alarms.owner: unknown mode "elected"`, "alarms.sla_check_interval: must be >= 0", "alarms.recent_window: must be >= 0",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	// The lease lives on the external broker; the advertised API must be a URL.
	c = &Config{Org: "o", Tariffs: "t", Templates: "d", Components: []string{"broker", "ingest", "api"}, Alarms: Alarms{Owner: AlarmsLease, Advertise: "10.0.0.1:8080"}}
	if err := validate(c); err == nil || !strings.Contains(err.Error(), "alarms.owner: lease: needs broker.external") ||
		!strings.Contains(err.Error(), `alarms.advertise: want http://host:port, got "10.0.0.1:8080"`) {
		t.Errorf("lease without broker.external: %v", err)
	}
	c = &Config{Org: "o", Tariffs: "t", Templates: "d", Components: []string{"ingest", "api"}, API: api.Config{Listen: "0.0.0.0:8081"},
		Broker: Broker{External: External{URL: "tcp://10.0.0.10:1883", Username: "plantroom-ingest"}}, Alarms: Alarms{Owner: AlarmsLease}}
	if err := validate(c); err != nil {
		t.Fatal(err)
	}
	if c.Alarms.LeaseClientID != "plantroom-ingest-alarms" || c.Alarms.Advertise != "http://127.0.0.1:8081" {
		t.Errorf("lease defaults: %+v", c.Alarms)
	}
	// Without the embedded broker, the ingest needs the external URL.
	c = &Config{Org: "o", Tariffs: "t", Templates: "d", Components: []string{"ingest"}}
	if err := validate(c); err == nil || !strings.Contains(err.Error(), "broker.external.url: required") {
		t.Errorf("ingest alone: %v", err)
	}
}

func TestLoadStrictAndEnv(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cloud.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("org: org.yaml\ntariffs: t.yaml\ntemplates: tpl\nclickhouse: {adress: x}\n")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "adress") {
		t.Errorf("unknown field accepted: %v", err)
	}
	write("org: org.yaml\ntariffs: t.yaml\ntemplates: tpl\n")
	t.Setenv(EnvClickHouseAddr, "clickhouse://u:p@10.0.0.5:9000/metrics")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ch := cfg.ClickHouse
	if ch.Addr != "10.0.0.5:9000" || ch.User != "u" || ch.Password != "p" || ch.Database != "metrics" {
		t.Errorf("DSN override: %+v", ch)
	}
	if cfg.Org != filepath.Join(dir, "org.yaml") {
		t.Errorf("org %q", cfg.Org)
	}
	t.Setenv(EnvClickHouseAddr, "127.0.0.1:19001")
	if cfg, err = Load(path); err != nil || cfg.ClickHouse.Addr != "127.0.0.1:19001" {
		t.Errorf("host:port override: %v %+v", err, cfg)
	}
	t.Setenv(EnvClickHouseAddr, "nonsense")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "CLICKHOUSE_ADDR") {
		t.Errorf("bad override: %v", err)
	}
}

func TestHashes(t *testing.T) {
	s, err := ReadSecret(strings.NewReader("demo-hq-admin\n"))
	if err != nil || s != "demo-hq-admin" {
		t.Fatalf("ReadSecret = %q, %v", s, err)
	}
	if got := HashToken(s); got != "sha256:5563ad88f3aeb7968e23fa2563f7972523839e415bc047eddb8924d80dfc5787" {
		t.Errorf("HashToken = %s (the demo org's hash of demo-hq-admin)", got)
	}
	if _, err := ReadSecret(strings.NewReader("\n")); err == nil {
		t.Error("empty secret accepted")
	}
	h, err := HashPassword("demo-gw-garden-1-secret")
	if err != nil || !strings.HasPrefix(h, "$2a$") {
		t.Errorf("HashPassword = %q, %v", h, err)
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("73-byte password accepted")
	}
}
