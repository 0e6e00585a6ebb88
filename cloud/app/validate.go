package app

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/ingest"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Validate fills in defaults and reports every problem with its path.
func (c *Config) Validate(p *config.Problems) {
	if len(c.Components) == 0 {
		c.Components = slices.Clone(Components)
	}
	seen := map[string]bool{}
	for i, comp := range c.Components {
		if !slices.Contains(Components, comp) {
			p.Addf(config.Join("components", i), "unknown component %q (want %s)", comp, strings.Join(Components, ", "))
		}
		if seen[comp] {
			p.Addf(config.Join("components", i), "component %q listed twice", comp)
		}
		seen[comp] = true
	}
	if c.Org == "" {
		p.Addf("org", "required: path of the organisation file")
	}
	if c.Tariffs == "" {
		p.Addf("tariffs", "required: path of the tariff file")
	}
	if c.Templates == "" {
		p.Addf("templates", "required: directory of the device templates")
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		p.Addf("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		p.Addf("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	if c.Metrics.Listen == "" {
		c.Metrics.Listen = DefaultMetricsListen
	}
	if c.Metrics.Listen != "off" {
		checkHostPort(p, "metrics.listen", c.Metrics.Listen)
	}
	c.validateBroker(p)
	c.validateIngest(p)
	c.validateClickHouse(p)
	if c.API.Listen == "" {
		c.API.Listen = DefaultAPIListen
	}
	c.validateAlarms(p)
	c.API.Validate(p, "api")
	c.Console.Validate(p, "console")
	c.Photos.Validate(p, "photos")
	c.Residents.Validate(p, "residents")
}

func (c *Config) validateBroker(p *config.Problems) {
	b := &c.Broker
	if b.Listen == "" && b.TLSListen == "" {
		b.Listen = DefaultBrokerListen
	}
	if b.Listen != "" && b.Listen != "off" {
		checkHostPort(p, "broker.listen", b.Listen)
	}
	if b.Listen == "off" {
		b.Listen = ""
		if b.TLSListen == "" {
			p.Addf("broker.listen", "\"off\" needs a tls_listen")
		}
	}
	if b.TLSListen != "" {
		checkHostPort(p, "broker.tls_listen", b.TLSListen)
		if b.TLSCert == "" {
			p.Addf("broker.tls_cert", "required with tls_listen (PEM certificate file)")
		}
		if b.TLSKey == "" {
			p.Addf("broker.tls_key", "required with tls_listen (PEM key file)")
		}
	} else if b.TLSCert != "" || b.TLSKey != "" {
		p.Addf("broker.tls_listen", "required when tls_cert or tls_key is set")
	}
	if b.MaxPending < 0 {
		p.Addf("broker.max_pending", "must be >= 0, got %d", b.MaxPending)
	}
	if b.SessionExpiry.Duration < 0 {
		p.Addf("broker.session_expiry", "must be > 0, got %s", b.SessionExpiry)
	}
	if b.SessionExpiry.Duration == 0 {
		b.SessionExpiry = config.D(broker.DefaultSessionExpiry)
	}
	if b.MaxPending == 0 {
		b.MaxPending = broker.DefaultMaxPending
	}
	names := map[string]bool{}
	for i, s := range b.Services {
		sp := config.Join(config.Join("broker", "services"), i)
		if err := protocol.CheckID(s.Username); err != nil {
			p.Add(config.Join(sp, "username"), err)
		}
		if s.Username == InternalService {
			p.Addf(config.Join(sp, "username"), "%q is reserved for the in-process ingest", s.Username)
		}
		if names[s.Username] {
			p.Addf(config.Join(sp, "username"), "duplicate service %q", s.Username)
		}
		names[s.Username] = true
		if !strings.HasPrefix(s.PasswordHash, "$2") && !isSHA256(s.PasswordHash) {
			p.Addf(config.Join(sp, "password_hash"), "must be a bcrypt hash (\"$2a$…\", from `bin/cloud hash-password`) or \"sha256:<64 hex digits>\" (from `bin/cloud hash-token`)")
		}
		for j, f := range s.Subscribe {
			checkFilter(p, config.Join(config.Join(sp, "subscribe"), j), f)
		}
		for j, f := range s.Publish {
			checkFilter(p, config.Join(config.Join(sp, "publish"), j), f)
		}
	}
	e := &b.External
	if e.URL != "" {
		u, err := url.Parse(e.URL)
		switch {
		case err != nil:
			p.Addf("broker.external.url", "invalid URL %q: %v", e.URL, err)
		case !slices.Contains([]string{"tcp", "ssl", "tls", "mqtt", "mqtts"}, u.Scheme):
			p.Addf("broker.external.url", "scheme %q not supported (want tcp://host:port or ssl://host:port)", u.Scheme)
		case u.Port() == "":
			p.Addf("broker.external.url", "%q needs a port", e.URL)
		}
	}
	if strings.ContainsAny(e.SharedGroup, "/+#") {
		p.Addf("broker.external.shared_group", "%q may not contain '/', '+' or '#'", e.SharedGroup)
	}
	if c.Has(ComponentIngest) && !c.IngestInProcess() && e.URL == "" {
		p.Addf("broker.external.url", "required: the ingest runs without the embedded broker in this process, so it needs the broker's URL")
	}
	if c.IngestInProcess() && b.Listen == "" {
		p.Addf("broker.listen", "required: the ingest in this process connects to the embedded broker over its plain listener")
	}
}

func (c *Config) validateIngest(p *config.Problems) {
	in := &c.Ingest
	if in.ClientID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		in.ClientID = "plantroom-ingest-" + host
	}
	if strings.ContainsAny(in.ClientID, "/+#") || len(in.ClientID) > 128 {
		p.Addf("ingest.client_id", "invalid client id %q", in.ClientID)
	}
	positive := func(path string, v *int, def, limit int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > limit:
			p.Addf(path, "must be between 1 and %d, got %d", limit, *v)
		}
	}
	positive("ingest.flush_rows", &in.FlushRows, ingest.DefaultFlushRows, 1_000_000)
	positive("ingest.max_unacked_messages", &in.MaxUnackedMessages, ingest.DefaultMaxUnacked, 100_000)
	positive("ingest.stale_after_intervals", &in.StaleAfterIntervals, ingest.DefaultStaleAfterIntervals, 1000)
	duration := func(path string, v *config.Duration, def, lo, hi time.Duration) {
		switch {
		case v.Duration == 0:
			*v = config.D(def)
		case v.Duration < lo || v.Duration > hi:
			p.Addf(path, "must be between %s and %s, got %s", lo, hi, v.Duration)
		}
	}
	duration("ingest.flush_interval", &in.FlushInterval, ingest.DefaultFlushInterval, 10*time.Millisecond, time.Minute)
	duration("ingest.max_future_skew", &in.MaxFutureSkew, ingest.DefaultMaxFutureSkew, time.Second, 7*24*time.Hour)
	duration("ingest.max_age", &in.MaxAge, ingest.DefaultMaxAge, time.Hour, 100*365*24*time.Hour)
	duration("ingest.latest_lookback", &in.LatestLookback, ingest.DefaultLatestLookback, time.Minute, 366*24*time.Hour)
	duration("ingest.stale_after_min", &in.StaleAfterMin, DefaultStaleAfterMin, time.Second, 7*24*time.Hour)
}

func (c *Config) validateClickHouse(p *config.Problems) {
	ch := &c.ClickHouse
	if ch.Addr == "" {
		ch.Addr = DefaultClickHouse
	}
	checkHostPort(p, "clickhouse.addr", ch.Addr)
	if ch.Database == "" {
		ch.Database = store.DefaultDatabase
	}
	if err := checkIdent(ch.Database); err != nil {
		p.Add("clickhouse.database", err)
	}
	if ch.User == "" {
		ch.User = "default"
	}
	if ch.Cluster != "" {
		if err := checkIdent(ch.Cluster); err != nil {
			p.Add("clickhouse.cluster", err)
		}
	}
	if ch.TTLDays < 0 {
		p.Addf("clickhouse.ttl_days", "must be >= 0 (0: keep forever), got %d", ch.TTLDays)
	}
}

func checkHostPort(p *config.Problems, path, v string) {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		p.Addf(path, "want host:port, got %q", v)
	}
}

func checkIdent(s string) error {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("invalid name %q: letters, digits and '_' only, not starting with a digit", s)
		}
	}
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func checkFilter(p *config.Problems, path, f string) {
	if f == "" {
		p.Addf(path, "empty topic filter")
		return
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if (strings.Contains(l, "#") && (l != "#" || i != len(levels)-1)) || (strings.Contains(l, "+") && l != "+") {
			p.Addf(path, "invalid topic filter %q", f)
			return
		}
	}
}

func isSHA256(h string) bool {
	hex, ok := strings.CutPrefix(h, "sha256:")
	return ok && len(hex) == 64 && strings.Trim(hex, "0123456789abcdef") == ""
}

func (c *Config) validateAlarms(p *config.Problems) {
	a := &c.Alarms
	switch a.Owner {
	case "":
		a.Owner = AlarmsLocal
	case AlarmsLocal:
	case AlarmsLease:
		if !c.Has(ComponentIngest) && !c.Has(ComponentAPI) {
			p.Addf("alarms.owner", "lease: needs the ingest or the api component in this process")
		}
		if c.Broker.External.URL == "" {
			p.Addf("alarms.owner", "lease: needs broker.external (the lease is a session on the shared broker)")
		}
		if a.LeaseClientID == "" && c.Broker.External.Username != "" {
			a.LeaseClientID = c.Broker.External.Username + "-alarms"
		}
		if c.Has(ComponentAPI) && a.Advertise == "" {
			a.Advertise = "http://" + loopback(c.API.Listen)
		}
		if a.Advertise != "" {
			if u, err := url.Parse(a.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.Addf("alarms.advertise", "want http://host:port, got %q", a.Advertise)
			}
		}
	default:
		p.Addf("alarms.owner", "unknown mode %q (want %s or %s)", a.Owner, AlarmsLocal, AlarmsLease)
	}
	if a.SLACheckInterval.Duration < 0 {
		p.Addf("alarms.sla_check_interval", "must be >= 0, got %s", a.SLACheckInterval)
	}
	if a.RecentWindow.Duration < 0 {
		p.Addf("alarms.recent_window", "must be >= 0, got %s", a.RecentWindow)
	}
}
