package api

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
)

// Owner says where the routes given to Forward are served: here (local),
// at the API base URL target, or nowhere yet (ok false).
type Owner func() (target string, local, ok bool)

// Forward makes the routes with these paths (as given to Register, without
// Prefix) be served by another replica while owner says so: the request,
// authenticated here, goes to the owner unchanged (its credentials
// included, so the owner checks access again) and the answer comes back
// unchanged; streams stream. While nobody owns them the answer is 503.
// Register the routes themselves as usual. Call Forward before Start.
func (s *Server) Forward(paths []string, owner Owner) {
	full := make([]string, len(paths))
	for i, p := range paths {
		full[i] = Prefix + p
	}
	s.forwardTo(owner, full...)
}

// ForwardMounted does for the handler given to Mount (the console) what
// Forward does for routes: its pages are served by the owner, whose
// sign-in sessions they need. Call it before Start.
func (s *Server) ForwardMounted(owner Owner) { s.forwardTo(owner, "/", "/*") }

// forwardTo records owner for the route templates given.
func (s *Server) forwardTo(owner Owner, routes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("BUG: api.Server.Forward after Start")
	}
	if s.forwarded == nil {
		s.forwarded = map[string]Owner{}
	}
	for _, r := range routes {
		s.forwarded[r] = owner
	}
}

// forward is the middleware that hands forwarded routes to their owner. It
// runs after routing (c.Path is the route's template) and authentication,
// before the route's own scope check, which needs the owner's state.
func (s *Server) forward(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		owner := s.forwarded[c.Path()]
		if owner == nil {
			return next(c)
		}
		target, local, ok := owner()
		switch {
		case local:
			return next(c)
		case !ok:
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable,
				Message: "no process owns alarms and work orders at the moment (one takes over within seconds); retry"}
		}
		u, err := url.Parse(target)
		if err != nil {
			return &Error{Status: http.StatusBadGateway, Code: CodeUnavailable, Message: "the owner of alarms and work orders announced an unusable address " + target, Err: err}
		}
		var failed error
		p := &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(u)
				r.SetXForwarded()
				r.Out.Host = r.In.Host
			},
			FlushInterval: -1, // streams (the alarm feed) pass through at once
			ErrorHandler:  func(_ http.ResponseWriter, _ *http.Request, err error) { failed = err },
		}
		// The owner bounds the request; a stream must not be cut by this
		// server's write timeout.
		_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{})
		p.ServeHTTP(c.Response(), c.Request())
		if failed != nil {
			return &Error{Status: http.StatusBadGateway, Code: CodeUnavailable,
				Message: "cannot reach the process that owns alarms and work orders (" + target + "); retry", Err: failed}
		}
		return nil
	}
}
