// Package console is the web console of bin/cloud: server-rendered pages
// (html/template) for HQ, project managers and technicians, served by the
// API server on the same origin. Every figure and list on a page comes from
// the API's own routes, called in process with the viewer's session, so a
// page shows exactly what the API would show that staff member and the
// access rules live in one place (see apiclient.go).
//
// Layout: one file per page (page_*.go) with its template
// (templates/<page>.html) on the shared layout (templates/layout.html);
// texts in locale/<lang>.json; static files in assets/. README.md in this
// folder says how to add a page.
package console

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/photo"
	"github.com/plantroom/plantroom/config"
)

// Config is the console's section of the cloud configuration ("console").
type Config struct {
	// Disabled turns the console off; the API still serves bearer tokens.
	Disabled bool `yaml:"disabled"`
	// IdleTimeout ends a session after this long without a request
	// (default 30m); AbsoluteTimeout after this long whatever happens
	// (default 12h).
	IdleTimeout     config.Duration `yaml:"idle_timeout"`
	AbsoluteTimeout config.Duration `yaml:"absolute_timeout"`
	// SecureCookies marks cookies Secure even on plain HTTP: set it behind a
	// TLS-terminating proxy. Requests that arrive over TLS get Secure cookies
	// anyway.
	SecureCookies bool `yaml:"secure_cookies"`
	// MaxFailures failed sign-ins of one account within FailureWindow lock
	// that account for FailureWindow (default 5 in 15m); an address is locked
	// after 4× as many.
	MaxFailures   int             `yaml:"max_failures"`
	FailureWindow config.Duration `yaml:"failure_window"`
	// MaxSessions bounds the sessions kept in memory (default 10000; the
	// least recently used go first).
	MaxSessions int `yaml:"max_sessions"`
	// PublicURL is the console's address as phones reach it
	// ("https://plantroom.example.com"): device QR labels carry
	// PublicURL/d/{device}. Empty: the address the label sheet was asked
	// at.
	PublicURL string `yaml:"public_url"`
}

func (c Config) withDefaults() Config {
	if c.IdleTimeout.Duration == 0 {
		c.IdleTimeout.Duration = 30 * time.Minute
	}
	if c.AbsoluteTimeout.Duration == 0 {
		c.AbsoluteTimeout.Duration = 12 * time.Hour
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = 5
	}
	if c.FailureWindow.Duration == 0 {
		c.FailureWindow.Duration = 15 * time.Minute
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 10000
	}
	return c
}

// Validate reports every problem of c under path.
func (c Config) Validate(p *config.Problems, path string) {
	c = c.withDefaults()
	if c.IdleTimeout.Duration < 0 {
		p.Addf(config.Join(path, "idle_timeout"), "must be > 0, got %s", c.IdleTimeout)
	}
	if c.AbsoluteTimeout.Duration < c.IdleTimeout.Duration {
		p.Addf(config.Join(path, "absolute_timeout"), "%s is shorter than idle_timeout %s", c.AbsoluteTimeout, c.IdleTimeout)
	}
	if c.MaxFailures < 1 {
		p.Addf(config.Join(path, "max_failures"), "must be >= 1, got %d", c.MaxFailures)
	}
	if c.FailureWindow.Duration < 0 {
		p.Addf(config.Join(path, "failure_window"), "must be > 0, got %s", c.FailureWindow)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			p.Addf(config.Join(path, "public_url"), "must be an absolute http(s) address without query, got %q", c.PublicURL)
		}
	}
	if c.MaxSessions < 1 {
		p.Addf(config.Join(path, "max_sessions"), "must be >= 1, got %d", c.MaxSessions)
	}
}

// Deps are the console's collaborators.
type Deps struct {
	Org    *config.Org      // staff and their password hashes (required)
	Rules  *config.RuleFile // who may command a company's devices; nil: the defaults
	Logger *slog.Logger     // nil: slog.Default()
	Now    func() time.Time // nil: time.Now
	// PhotoMaxBytes is the photo upload limit (photos.max_bytes); 0:
	// photo.DefaultMaxBytes.
	PhotoMaxBytes int64
}

// Console serves the pages. New → (api.New with Deps.Sessions = the
// console) → Attach(server).
type Console struct {
	cfg      Config
	org      *config.Org
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	account  *throttle // failed sign-ins per staff id
	address  *throttle // failed sign-ins per client address
	assets   *assetSet
	cats     catalogues
	views    *views
	api      http.Handler
	mux      *http.ServeMux
	trend    *monthCache
	// hqReports: the trend points of the HQ report an HQ page just showed,
	// per viewer and month, for the trend the page asks for next.
	hqReports *monthCache
	photoMax  int64
}

// New builds the console. Pass it to api.New as Deps.Sessions, then Attach
// the API server.
func New(cfg Config, deps Deps) (*Console, error) {
	cfg = cfg.withDefaults()
	var p config.Problems
	cfg.Validate(&p, "console")
	if deps.Org == nil {
		p.Addf("deps.org", "required")
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("cannot create console: %w", err)
	}
	c := &Console{cfg: cfg, org: deps.Org, log: deps.Logger, now: deps.Now, photoMax: deps.PhotoMaxBytes}
	if c.photoMax <= 0 {
		c.photoMax = photo.DefaultMaxBytes
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if c.assets, err = loadAssets(); err != nil {
		return nil, fmt.Errorf("cannot create console: %w", err)
	}
	if c.cats, err = loadCatalogues(); err != nil {
		return nil, fmt.Errorf("cannot create console: %w", err)
	}
	if c.views, err = parseViews(c.assets); err != nil {
		return nil, fmt.Errorf("cannot create console: %w", err)
	}
	c.sessions = newSessions(cfg.IdleTimeout.Duration, cfg.AbsoluteTimeout.Duration, cfg.MaxSessions, c.now)
	c.sessions.rules = deps.Rules
	c.account = newThrottle(cfg.MaxFailures, cfg.FailureWindow.Duration, 100000, c.now)
	c.address = newThrottle(4*cfg.MaxFailures, cfg.FailureWindow.Duration, 100000, c.now)
	c.trend = newMonthCache(5*time.Minute, 256, c.now)
	c.hqReports = newMonthCache(time.Minute, 256, c.now)
	c.mux = http.NewServeMux()
	c.routes()
	return c, nil
}

// Attach mounts the console on the API server, which then serves both, and
// lets the console call the server's routes.
func (c *Console) Attach(srv *api.Server) {
	c.api = srv.Handler()
	srv.MountBodyLimit(c.uploadLimit(), isUpload)
	srv.MountBodyLimit(c.residentUploadLimit(), isResidentUpload)
	srv.Mount(c.Handler())
}

// Handler serves the console's pages and assets.
func (c *Console) Handler() http.Handler { return secureHeaders(c.mux) }

// handle registers a page handler: pattern as http.ServeMux takes it. A
// page that needs a session (signedIn) sends visitors without one to the
// sign-in page; a state-changing request must carry the CSRF token.
func (c *Console) handle(pattern string, signedIn bool, h pageHandler) {
	c.mux.Handle(pattern, compressPages(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, st := c.sessions.get(r)
		if signedIn && sess == nil {
			c.toSignIn(w, r, st == expiredSession)
			return
		}
		if !safeMethod(r.Method) && !c.validCSRF(r, sess) {
			c.log.Warn("console: refused a request without a valid CSRF token", "path", r.URL.Path, "addr", r.RemoteAddr)
			c.fail(w, r, sess, http.StatusForbidden, "error.csrf")
			return
		}
		h(w, r, sess)
	})))
}

type pageHandler func(w http.ResponseWriter, r *http.Request, sess *Session)

// routes lists every page. Add a page here, in its own page_<name>.go.
func (c *Console) routes() {
	c.mux.HandleFunc("GET "+AssetPrefix, c.assets.serve)
	c.handle("GET /{$}", false, c.home)
	c.handle("GET /signin", false, c.signinPage)
	c.handle("POST /signin", false, c.signin)
	c.handle("POST /signout", false, c.signout)
	c.handle("POST /lang", false, c.setLanguage)
	c.handle("GET /hq", true, c.hqPage)
	c.handle("GET /hq/trend", true, c.hqTrend)
	c.handle("GET /projects/{project}", true, c.projectPage)
	c.handle("GET /projects/{project}/devices", true, c.projectDevices)
	c.handle("GET /projects/{project}/labels", true, c.labelsPage)
	c.handle("GET /devices/{device}", true, c.devicePage)
	c.handle("POST /devices/{device}/workorders", true, c.newOrder)
	c.handle("POST /devices/{device}/commands", true, c.sendCommand)
	c.handle("GET /devices/{device}/commands/{command}", true, c.commandProgress)
	c.handle("GET /d/{device}", true, c.deviceLink)
	c.handle("GET /my", true, c.myPage)
	c.handle("POST /my/{workorder}/move", true, c.moveOrder)
	c.handle("GET /workorders/{workorder}", true, c.orderPage)
	c.handle("POST /workorders/{workorder}/move", true, c.moveWithPhotos)
	c.handle("GET /alarms", true, c.alarmsPage)
	c.handle("POST /alarms/{alarm}/ack", true, c.ackAlarm)
	c.handle("GET /r/{link}", false, c.requestPage)
	c.handle("POST /r/{link}", false, c.submitRequest)
	c.handle("GET /t/{token}", false, c.trackPage)
	c.handle("POST /t/{token}/rate", false, c.rateRequest)
	c.handle("GET /projects/{project}/requests", true, c.requestsPage)
	c.handle("POST /projects/{project}/requests/link", true, c.rotateLink)
	c.handle("/", false, func(w http.ResponseWriter, r *http.Request, sess *Session) {
		c.fail(w, r, sess, http.StatusNotFound, "error.not_found")
	})
}

// home sends HQ staff to the overview and project staff to their first
// project.
func (c *Console) home(w http.ResponseWriter, r *http.Request, sess *Session) {
	if sess == nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	if sess.Principal.HQ() {
		http.Redirect(w, r, "/hq", http.StatusSeeOther)
		return
	}
	if len(sess.Principal.Projects) > 0 {
		http.Redirect(w, r, "/projects/"+sess.Principal.Projects[0], http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/alarms", http.StatusSeeOther)
}

// secure reports whether cookies must be Secure for r.
func (c *Console) secure(r *http.Request) bool { return c.cfg.SecureCookies || r.TLS != nil }

// Sessions is the number of live sessions.
func (c *Console) Sessions() int { return c.sessions.count() }
