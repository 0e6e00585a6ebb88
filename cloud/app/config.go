// Package app is the cloud's configuration (configs/cloud.yaml) and the
// wiring of its components: the embedded MQTT broker, the ingest, and the
// components other packages add (the API, alarms) through App.Add.
package app

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/console"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/cloud/resident"
	"github.com/plantroom/plantroom/config"
)

// Component names for Config.Components.
const (
	ComponentBroker = "broker"
	ComponentIngest = "ingest"
	ComponentAPI    = "api"
)

// Components lists every component name.
var Components = []string{ComponentBroker, ComponentIngest, ComponentAPI}

// Config is the cloud configuration file. Relative paths are relative to
// the file's directory.
type Config struct {
	Org       string `yaml:"org"`
	Tariffs   string `yaml:"tariffs"`
	Templates string `yaml:"templates"`
	Rules     string `yaml:"rules"`
	// Components this process runs (default: all). Run them in separate
	// processes to scale out, e.g. [broker] on one machine and [ingest] on
	// several.
	Components []string   `yaml:"components"`
	Log        Log        `yaml:"log"`
	Metrics    Metrics    `yaml:"metrics"`
	Broker     Broker     `yaml:"broker"`
	Ingest     Ingest     `yaml:"ingest"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	// Alarms says which process owns the alarm engine and the work-order
	// desk.
	Alarms Alarms `yaml:"alarms"`
	// API is the api component's section, defined by package api.
	API api.Config `yaml:"api"`
	// Console is the web console's section, defined by package console; it
	// is served by the api component.
	Console console.Config `yaml:"console"`
	// Photos is where work-order photos are kept and how large an upload
	// may be (package photo).
	Photos photo.Config `yaml:"photos"`
	// Residents limits residents' repair requests (package resident):
	// per_address and per_project requests within window.
	Residents resident.Limits `yaml:"residents"`
}

// Alarm ownership modes (see docs/cloud.md, "Who owns alarms and work
// orders").
const (
	// AlarmsLocal: the process that runs the ingest runs the engine and
	// the desk itself (one such process per deployment).
	AlarmsLocal = "local"
	// AlarmsLease: one process at a time owns them, through a lease on the
	// external broker; the others forward to it.
	AlarmsLease = "lease"
)

// Alarms configures the ownership of alarm evaluation and work orders.
type Alarms struct {
	// Owner is "local" (default) or "lease".
	Owner string `yaml:"owner"`
	// Advertise is this process's API as the other replicas reach it
	// (http://host:port), told to them while this process owns the lease;
	// default api.listen, with 127.0.0.1 for an unspecified host.
	Advertise string `yaml:"advertise"`
	// LeaseClientID is the MQTT session that is the lease (default
	// "<broker.external.username>-alarms"); the same in every process.
	LeaseClientID string `yaml:"lease_client_id"`
	// SLACheckInterval is how often the owner checks work orders' SLA due
	// times (default 30s).
	SLACheckInterval config.Duration `yaml:"sla_check_interval"`
	// RecentWindow is how long cleared alarms and closed or cancelled work
	// orders stay in memory after they were raised or opened (default 7
	// days); older ones are read from ClickHouse when a list reaches back
	// that far. Active alarms and orders still being worked on are always
	// held.
	RecentWindow config.Duration `yaml:"recent_window"`
}

// Log configures the process log (on stderr).
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is the address of GET /metrics (default 127.0.0.1:9464;
	// "off" disables it).
	Listen string `yaml:"listen"`
}

// Broker configures the embedded broker, or the external one the ingest
// uses instead.
type Broker struct {
	// Embedded runs the mochi broker in this process when the broker
	// component is enabled (default true).
	Embedded *bool  `yaml:"embedded"`
	Listen   string `yaml:"listen"` // default 127.0.0.1:1883
	// TLSListen with TLSCert and TLSKey (PEM files) adds a TLS listener.
	TLSListen string `yaml:"tls_listen"`
	TLSCert   string `yaml:"tls_cert"`
	TLSKey    string `yaml:"tls_key"`
	// MaxPending: unacknowledged messages a durable subscriber (the ingest)
	// may hold before gateways are held back (default 1000).
	MaxPending int `yaml:"max_pending"`
	// StorePath keeps sessions and queued messages in a bbolt file across
	// broker restarts ("" keeps them in memory only).
	StorePath string `yaml:"store_path"`
	// SessionExpiry: how long a disconnected client's session is kept
	// (default 168h).
	SessionExpiry config.Duration `yaml:"session_expiry"`
	// Services are the non-gateway users: ingest replicas in other
	// processes, staff tools.
	Services []broker.Service `yaml:"services"`
	// External is the broker the ingest connects to when it does not run
	// in the same process as the embedded broker.
	External External `yaml:"external"`
}

// EnabledServices are the services that may sign in (enabled: true).
func (b *Broker) EnabledServices() []broker.Service {
	var out []broker.Service
	for _, s := range b.Services {
		if s.Enabled {
			out = append(out, s)
		}
	}
	return out
}

// External is how the ingest reaches a broker outside its process: the
// embedded broker of another cloud process, EMQX or mosquitto.
type External struct {
	URL      string `yaml:"url"` // tcp://host:1883 or ssl://host:8883
	Username string `yaml:"username"`
	// Password; the environment variable PLANTROOM_MQTT_PASSWORD overrides it.
	Password string `yaml:"password"`
	// SharedGroup makes replicas split the messages ($share/<group>/…).
	SharedGroup string `yaml:"shared_group"`
	// CAFile verifies an ssl:// broker with this CA bundle instead of the
	// system's.
	CAFile string `yaml:"ca_file"`
}

// Ingest configures the ingest.
type Ingest struct {
	// ClientID must be stable and unique per replica (default
	// "plantroom-ingest-<hostname>"); with the embedded broker it must
	// start with the service's user name.
	ClientID           string          `yaml:"client_id"`
	FlushRows          int             `yaml:"flush_rows"`
	FlushInterval      config.Duration `yaml:"flush_interval"`
	MaxUnackedMessages int             `yaml:"max_unacked_messages"`
	MaxFutureSkew      config.Duration `yaml:"max_future_skew"`
	// MaxAge: readings older than this are rejected (cause too_old).
	MaxAge              config.Duration `yaml:"max_age"`
	StaleAfterIntervals int             `yaml:"stale_after_intervals"`
	// StaleAfterMin is the shortest stale window: longer than the edge
	// agents' report heartbeat (default 11m against their default 5m).
	StaleAfterMin  config.Duration `yaml:"stale_after_min"`
	LatestLookback config.Duration `yaml:"latest_lookback"`
}

// ClickHouse configures the storage.
type ClickHouse struct {
	// Addr is host:port of the native protocol (default 127.0.0.1:19000,
	// the server scripts/clickhouse.sh runs). CLICKHOUSE_ADDR overrides it:
	// host:port, or clickhouse://user:password@host:port/database.
	Addr     string `yaml:"addr"`
	Database string `yaml:"database"` // default plantroom
	User     string `yaml:"user"`     // default "default"
	Password string `yaml:"password"`
	// Cluster, when set, creates Replicated tables behind Distributed ones
	// on that cluster (see docs/cloud.md).
	Cluster string `yaml:"cluster"`
	// TTLDays drops raw readings older than this on servers with TTL (0:
	// never).
	TTLDays int `yaml:"ttl_days"`
}

// Defaults.
const (
	// DefaultStaleAfterMin exceeds two of the edge agent's default report
	// heartbeats (5 min), so a quiet but healthy device is never stale.
	DefaultStaleAfterMin = 11 * time.Minute
	DefaultBrokerListen  = "127.0.0.1:1883"
	DefaultMetricsListen = "127.0.0.1:9464"
	DefaultAPIListen     = "127.0.0.1:8080"
	DefaultClickHouse    = "127.0.0.1:19000"
	// InternalService is the user the in-process ingest uses with the
	// embedded broker, with a random password made at start.
	InternalService = "plantroom-internal"
)

// Has reports whether the component runs in this process.
func (c *Config) Has(component string) bool { return slices.Contains(c.Components, component) }

// EmbeddedBroker reports whether this process runs the embedded broker.
func (c *Config) EmbeddedBroker() bool {
	return c.Has(ComponentBroker) && (c.Broker.Embedded == nil || *c.Broker.Embedded)
}

// IngestInProcess reports whether the ingest talks to this process's
// embedded broker (rather than broker.external).
func (c *Config) IngestInProcess() bool {
	return c.Has(ComponentIngest) && c.EmbeddedBroker() && c.Broker.External.URL == ""
}

// Environment variables that override the file.
const (
	EnvClickHouseAddr     = "CLICKHOUSE_ADDR"
	EnvClickHouseUser     = "CLICKHOUSE_USER"
	EnvClickHousePassword = "CLICKHOUSE_PASSWORD"
	EnvClickHouseDatabase = "CLICKHOUSE_DATABASE"
	EnvMQTTPassword       = "PLANTROOM_MQTT_PASSWORD"
)

// Load reads and validates the configuration file, resolves relative paths
// against its directory and applies the environment overrides.
func Load(path string) (*Config, error) {
	c := &Config{}
	if err := config.LoadFile(path, c); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	for _, f := range []*string{&c.Org, &c.Tariffs, &c.Templates, &c.Rules, &c.Broker.TLSCert, &c.Broker.TLSKey,
		&c.Broker.StorePath, &c.Broker.External.CAFile, &c.Photos.Dir} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(dir, *f)
		}
	}
	if err := c.applyEnv(os.Getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// applyEnv applies CLICKHOUSE_* (the format internal/chtest reads) and
// PLANTROOM_MQTT_PASSWORD.
func (c *Config) applyEnv(getenv func(string) string) error {
	ch := &c.ClickHouse
	for env, f := range map[string]*string{EnvClickHouseUser: &ch.User, EnvClickHousePassword: &ch.Password, EnvClickHouseDatabase: &ch.Database} {
		if v := getenv(env); v != "" {
			*f = v
		}
	}
	if v := strings.TrimSpace(getenv(EnvClickHouseAddr)); v != "" {
		if !strings.Contains(v, "://") {
			if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
				return fmt.Errorf("cannot use %s=%q: want host:port or clickhouse://user:password@host:port/database", EnvClickHouseAddr, v)
			}
			ch.Addr = v
		} else {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "clickhouse" && u.Scheme != "tcp") || u.Port() == "" {
				return fmt.Errorf("cannot use %s=%q: want host:port or clickhouse://user:password@host:port/database", EnvClickHouseAddr, v)
			}
			ch.Addr = u.Host
			if u.User != nil {
				ch.User = u.User.Username()
				if pw, ok := u.User.Password(); ok {
					ch.Password = pw
				}
			}
			if db := strings.Trim(u.Path, "/"); db != "" {
				ch.Database = db
			}
		}
	}
	if err := checkIdent(ch.Database); err != nil {
		return fmt.Errorf("cannot use database from the environment: %w", err)
	}
	if v := getenv(EnvMQTTPassword); v != "" {
		c.Broker.External.Password = v
	}
	return nil
}
