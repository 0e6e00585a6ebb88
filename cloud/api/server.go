package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/plantroom/plantroom/cloud/energy"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
)

// Prefix is the path prefix of every authenticated route.
const Prefix = "/api/v1"

// Unauthenticated operational endpoints.
const (
	pathHealth  = "/healthz"
	pathReady   = "/readyz"
	pathMetrics = "/metrics"
)

// Database is the reading store the API queries: *store.DB.
type Database interface {
	Ping(ctx context.Context) error
	Readings() *store.Readings
}

// Deps are the API's collaborators.
type Deps struct {
	Bundle *config.Bundle // organisation, tariffs, templates (required)
	DB     Database       // ClickHouse with the readings schema (required)
	// Latest and Presence feed the device list; nil shows no values and
	// unknown presence.
	Latest   LatestValues
	Presence Presence
	Logger   *slog.Logger // nil: slog.Default()
	// Registry receives the API's metrics and is what /metrics serves; nil:
	// a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	Now      func() time.Time // nil: time.Now
	// Sessions, when set, lets browser requests authenticate with a console
	// session cookie instead of a bearer token.
	Sessions Sessions
}

// Server is the HTTP API. New → Register (other packages' routes) → Start
// → Stop.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	echo     *echo.Echo
	tokens   tokens
	devices  map[string]config.DeviceInfo
	readings *store.Readings
	energy   map[string]*energy.Project
	reports  *energy.Cache // monthly and HQ reports of finished months; nil: none kept
	metrics  *httpMetrics
	registry *prometheus.Registry
	now      func() time.Time
	unready  atomic.Bool // last readiness probe failed

	mu     sync.Mutex
	routes []RouteInfo
	// templates are the paths of every route (metric labels).
	templates map[string]struct{}
	// forwarded are the routes another replica may serve (Forward).
	forwarded map[string]Owner
	// bodyLimits are the routes' own body limits ("METHOD path"), and
	// mountLimits those of mounted requests; both set before Start.
	bodyLimits  map[string]int64
	mountLimits []mountLimit
	started     bool
	stopped     bool
	// warm is the start's computation of last month's reports (warmReports).
	warm       sync.WaitGroup
	warmCancel context.CancelFunc
	srv        *http.Server
	ln         net.Listener
	done       chan struct{}
}

// Route is one API endpoint. Its Scope is checked before Handler runs.
type Route struct {
	Method string
	// Path is under Prefix, in Echo syntax: "/projects/:project/devices".
	Path    string
	Scope   Scope
	Handler echo.HandlerFunc
	// Stream marks a long-lived response (server-sent events): no request
	// deadline and no write timeout.
	Stream bool
	// BodyLimit is the largest request body of this route (an upload); 0:
	// the server's api.body_limit.
	BodyLimit int64
}

// RouteInfo describes a registered route.
type RouteInfo struct {
	Method string
	Path   string // full path, Prefix included
	Scope  Scope
	Public bool // served without authentication (operational endpoints)
}

// New builds the server and registers the API's own routes.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.withDefaults()
	var p config.Problems
	cfg.Validate(&p, "api")
	if deps.Bundle == nil {
		p.Addf("deps.bundle", "required")
	}
	if deps.DB == nil {
		p.Addf("deps.db", "required")
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("cannot create API server: %w", err)
	}
	s := &Server{
		cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, registry: deps.Registry,
		tokens:     newTokens(&deps.Bundle.Org, &deps.Bundle.Rules),
		devices:    map[string]config.DeviceInfo{},
		readings:   deps.DB.Readings(),
		done:       make(chan struct{}),
		templates:  map[string]struct{}{pathHealth: {}, pathReady: {}, pathMetrics: {}},
		bodyLimits: map[string]int64{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	}
	ep, err := energyProjects(deps.Bundle)
	if err != nil {
		return nil, fmt.Errorf("cannot create API server: %w", err)
	}
	s.energy = ep
	if cfg.ReportCacheEntries > 0 {
		s.reports = energy.NewCache(s.readings, cfg.ReportCacheEntries)
		s.registry.MustRegister(reportCacheCollector{s.reports})
	}
	for _, d := range deps.Bundle.Org.Devices() {
		s.devices[d.Device.ID] = d
	}
	s.metrics = newHTTPMetrics(s.registry)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = cfg.ipExtractor()
	e.Use(requestIDs(), s.observe, recoverPanic(), s.limitBodies(cfg.BodyLimit), s.authenticate, s.forward)
	e.GET(pathHealth, func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET(pathReady, s.ready)
	e.GET(pathMetrics, echo.WrapHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})))
	s.echo = e
	s.Register(s.ownRoutes()...)
	return s, nil
}

// Register adds routes. Call it before Start. It panics with "BUG:" on a
// route without a valid scope or a duplicate.
func (s *Server) Register(routes ...Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("BUG: api.Server.Register after Start")
	}
	for _, r := range routes {
		full := Prefix + r.Path
		if r.Path == "" || r.Path[0] != '/' {
			panic(fmt.Sprintf("BUG: route %s %q: path must start with /", r.Method, r.Path))
		}
		if r.Handler == nil {
			panic("BUG: route " + r.Method + " " + full + " has no handler")
		}
		r.Scope.check(r.Method, full)
		for _, o := range s.routes {
			if o.Method == r.Method && o.Path == full {
				panic("BUG: route " + r.Method + " " + full + " registered twice")
			}
		}
		if r.BodyLimit > 0 {
			s.bodyLimits[r.Method+" "+full] = r.BodyLimit
		}
		s.echo.Add(r.Method, full, r.Handler, withDeadline(s.cfg.RequestTimeout.Duration, r.Stream), s.guard(r.Scope))
		s.routes = append(s.routes, RouteInfo{Method: r.Method, Path: full, Scope: r.Scope})
		s.templates[full] = struct{}{}
	}
}

// Mount serves h for every path that is neither under Prefix nor an
// operational endpoint: the console's pages and assets. Requests pass the
// same middleware as the API's (request id, access log and metrics, panic
// recovery, body limit). Call it before Start.
func (s *Server) Mount(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("BUG: api.Server.Mount after Start")
	}
	wrapped := func(c echo.Context) error {
		if p := c.Request().URL.Path; p == Prefix || strings.HasPrefix(p, Prefix+"/") {
			return echo.ErrNotFound // an unknown API path stays an API 404
		}
		r := c.Request()
		h.ServeHTTP(c.Response(), r.WithContext(context.WithValue(r.Context(), clientIPKey{}, c.RealIP())))
		return nil
	}
	s.echo.Any("/", wrapped)
	s.echo.Any("/*", wrapped)
}

type mountLimit struct {
	limit int64
	match func(*http.Request) bool
}

// MountBodyLimit gives mounted requests for which match is true a body
// limit of limit bytes instead of api.body_limit (a console form that
// uploads photos). Call it before Start.
func (s *Server) MountBodyLimit(limit int64, match func(*http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("BUG: api.Server.MountBodyLimit after Start")
	}
	s.mountLimits = append(s.mountLimits, mountLimit{limit, match})
}

// limitBodies applies the body limit of the request's route (or mounted
// path), def when it has none. The limits are set before Start.
func (s *Server) limitBodies(def int64) echo.MiddlewareFunc {
	byDefault := limitBody(def)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		deflt := byDefault(next)
		return func(c echo.Context) error {
			if l := s.bodyLimits[c.Request().Method+" "+c.Path()]; l > 0 {
				return limitBody(l)(next)(c)
			}
			for _, m := range s.mountLimits {
				if m.match(c.Request()) {
					return limitBody(m.limit)(next)(c)
				}
			}
			return deflt(c)
		}
	}
}

type clientIPKey struct{}

// ClientIP is the client's address for a request the server passed to a
// mounted handler: the connection's, or X-Forwarded-For's when the
// connection comes from one of api.trusted_proxies (the same rule as the
// access log's). "" for other requests.
func ClientIP(r *http.Request) string {
	ip, _ := r.Context().Value(clientIPKey{}).(string)
	return ip
}

// Routes lists the registered routes under Prefix, sorted by path and method.
func (s *Server) Routes() []RouteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]RouteInfo(nil), s.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Endpoints lists every route the server answers, the unauthenticated
// operational ones (/healthz, /readyz, /metrics) included.
func (s *Server) Endpoints() []RouteInfo {
	out := s.Routes()
	for _, p := range []string{pathHealth, pathReady, pathMetrics} {
		out = append(out, RouteInfo{Method: http.MethodGet, Path: p, Public: true})
	}
	return out
}

// Handler is the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Start listens on cfg.Listen and serves until Stop or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("cannot start API server: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot start API server on %q: %w", s.cfg.Listen, err)
	}
	s.started, s.ln = true, ln
	s.srv = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       s.cfg.ReadTimeout.Duration,
		WriteTimeout:      s.cfg.WriteTimeout.Duration,
		IdleTimeout:       s.cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("API server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.done:
		}
	}()
	s.log.Info("API listening", "addr", ln.Addr().String())
	if s.reports != nil {
		wctx, cancel := context.WithCancel(ctx)
		s.warmCancel = cancel
		s.warm.Add(1)
		go func() {
			defer s.warm.Done()
			s.warmReports(wctx)
		}()
	}
	return nil
}

// Addr is the address the server listens on (after Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop shuts the server down gracefully (open requests get
// cfg.ShutdownTimeout) and waits for it. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.stopped = true
		s.mu.Unlock()
		return
	}
	s.stopped = true
	srv := s.srv
	if s.warmCancel != nil {
		s.warmCancel()
	}
	s.mu.Unlock()
	s.warm.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.Duration)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	<-s.done
}

// ready answers 200 when ClickHouse answers a ping.
func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	err := s.deps.DB.Ping(ctx)
	// Probes come every few seconds: log changes of state only.
	if was := s.unready.Swap(err != nil); was != (err != nil) {
		if err != nil {
			s.log.Warn("not ready: ClickHouse unreachable", "err", err)
		} else {
			s.log.Info("ready: ClickHouse reachable again")
		}
	}
	if err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "clickhouse": "unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "clickhouse": "ok"})
}

func (s *Server) org() *config.Org { return &s.deps.Bundle.Org }

func (s *Server) device(id string) (config.DeviceInfo, bool) {
	d, ok := s.devices[id]
	return d, ok
}

// Config is the API server's configuration (the "api" section of the
// cloud's configuration file).
type Config struct {
	// Listen is the TCP address: "127.0.0.1:8080", ":8080"; port 0 picks one.
	Listen            string          `yaml:"listen"`
	ReadHeaderTimeout config.Duration `yaml:"read_header_timeout"` // default 10s
	ReadTimeout       config.Duration `yaml:"read_timeout"`        // whole request incl. body; default 30s
	WriteTimeout      config.Duration `yaml:"write_timeout"`       // default 60s; streams are exempt
	IdleTimeout       config.Duration `yaml:"idle_timeout"`        // keep-alive; default 2m
	// RequestTimeout bounds a handler's work, storage queries included;
	// default 30s.
	RequestTimeout  config.Duration `yaml:"request_timeout"`
	ShutdownTimeout config.Duration `yaml:"shutdown_timeout"` // default 10s
	// BodyLimit is the largest request body in bytes; default 1 MiB.
	BodyLimit int64 `yaml:"body_limit"`
	// TrustedProxies are the reverse proxies (addresses or CIDR ranges)
	// whose X-Forwarded-For names the client in the access log; from any
	// other peer the header is ignored. Empty: the peer address is the
	// client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReportCacheEntries bounds the computations of finished months kept
	// for the monthly and HQ reports (docs/api.md); default 64, -1: none.
	ReportCacheEntries int `yaml:"report_cache_entries"`
}

// Defaults of Config.
const (
	DefaultListen = "127.0.0.1:8080"
	DefaultBody   = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	def := func(d *config.Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.RequestTimeout, 30*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBody
	}
	if c.ReportCacheEntries == 0 {
		c.ReportCacheEntries = DefaultReportCacheEntries
	}
	return c
}

// Validate reports every problem of c (after defaults) under path.
func (c Config) Validate(p *config.Problems, path string) {
	c = c.withDefaults()
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		p.Addf(config.Join(path, "listen"), "invalid address %q (want host:port)", c.Listen)
	}
	for _, d := range []struct {
		name string
		v    config.Duration
	}{
		{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout},
		{"idle_timeout", c.IdleTimeout}, {"request_timeout", c.RequestTimeout}, {"shutdown_timeout", c.ShutdownTimeout},
	} {
		if d.v.Duration < 0 {
			p.Addf(config.Join(path, d.name), "must be > 0, got %s", d.v)
		}
	}
	if c.RequestTimeout.Duration > c.WriteTimeout.Duration {
		p.Addf(config.Join(path, "request_timeout"), "%s is longer than write_timeout %s: answers would be cut off", c.RequestTimeout, c.WriteTimeout)
	}
	if c.BodyLimit < 0 {
		p.Addf(config.Join(path, "body_limit"), "must be > 0 bytes, got %d", c.BodyLimit)
	}
	if c.ReportCacheEntries < -1 {
		p.Addf(config.Join(path, "report_cache_entries"), "must be > 0, or -1 for none, got %d", c.ReportCacheEntries)
	}
	for i, v := range c.TrustedProxies {
		if _, err := proxyNet(v); err != nil {
			p.Addf(fmt.Sprintf("%s[%d]", config.Join(path, "trusted_proxies"), i), "invalid address or CIDR range %q", v)
		}
	}
}

// proxyNet reads an address ("10.0.0.5") or a CIDR range ("10.0.0.0/8").
func proxyNet(v string) (*net.IPNet, error) {
	if ip := net.ParseIP(v); ip != nil {
		bits := 128
		if ip.To4() != nil {
			ip, bits = ip.To4(), 32
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	_, n, err := net.ParseCIDR(v)
	return n, err
}

// ipExtractor names a request's client: the peer, or, when the peer is
// one of TrustedProxies, the nearest untrusted address of X-Forwarded-For.
func (c Config) ipExtractor() echo.IPExtractor {
	if len(c.TrustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, v := range c.TrustedProxies {
		if n, err := proxyNet(v); err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
