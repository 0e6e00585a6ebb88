package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

const keyRequestID = "plantroom.request_id"

// requestID returns the request's id (set by withRequestID).
func requestID(c echo.Context) string {
	id, _ := c.Get(keyRequestID).(string)
	return id
}

// RequestID returns the id of a request, for handlers that log.
func RequestID(c echo.Context) string { return requestID(c) }

// requestIDs takes a well-formed X-Request-Id from the client (up to 64
// characters of [A-Za-z0-9._-]) or makes one, and echoes it in the response
// (Echo's RequestID; ours only checks the client's id).
func requestIDs() echo.MiddlewareFunc {
	return middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: newRequestID,
		RequestIDHandler: func(c echo.Context, id string) {
			if !validRequestID(id) {
				id = newRequestID()
				c.Response().Header().Set(echo.HeaderXRequestID, id)
			}
			c.Set(keyRequestID, id)
		},
	})
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// httpMetrics are the API's Prometheus series.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plantroom_api_requests_total", Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "plantroom_api_request_duration_seconds", Help: "API request latency by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe logs each request once (the access log) and counts it. It runs
// outermost, so it sees the status the error handler wrote.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			s.handleError(err, c) // writes the response; the status is now final
		}
		req, res := c.Request(), c.Response()
		route := s.routeLabel(c.Path())
		d := time.Since(start)
		method := methodLabel(req.Method)
		s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(res.Status)).Inc()
		s.metrics.duration.WithLabelValues(route, method).Observe(d.Seconds())
		level := slog.LevelInfo
		if route == pathHealth || route == pathReady || route == pathMetrics {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)), slog.String("method", method),
			slog.String("path", req.URL.Path), slog.String("route", route), slog.Int("status", res.Status),
			slog.Int64("bytes", res.Size), slog.Float64("ms", float64(d.Microseconds())/1000),
			slog.String("remote", c.RealIP()),
		}
		if p := PrincipalOf(c); p != nil {
			attrs = append(attrs, slog.String("staff", p.Staff))
		}
		s.log.LogAttrs(req.Context(), level, "request", attrs...)
		return nil
	}
}

// limitBody refuses bodies over limit bytes with 413 (Echo's BodyLimit):
// when the declared length says so, and on reading past the limit.
func limitBody(limit int64) echo.MiddlewareFunc {
	return middleware.BodyLimit(strconv.FormatInt(limit, 10) + "B")
}

// withDeadline bounds a request's work by timeout (Echo's ContextTimeout;
// the error handler maps the deadline to 503 "timeout"); a streaming route
// instead lifts the server's write deadline and keeps the client's context.
func withDeadline(timeout time.Duration, stream bool) echo.MiddlewareFunc {
	if stream {
		return func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{})
				return next(c)
			}
		}
	}
	return middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{
		Timeout:      timeout,
		ErrorHandler: func(err error, _ echo.Context) error { return err },
	})
}

// recoverPanic turns a handler's panic into an error (Echo's Recover) that
// the error handler answers with 500 and logs with its stack.
func recoverPanic() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll:     true,
		DisableErrorHandler: true,
		LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
			return fmt.Errorf("panic: %w\n%s", err, stack)
		},
	})
}

// methodLabel is the method as a metric label: one of a fixed set, "other"
// for anything else, so invented methods add no series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// routeLabel is the route template a request matched as a metric label;
// "unmatched" for anything that is not a registered route.
func (s *Server) routeLabel(path string) string {
	if _, ok := s.templates[path]; ok {
		return path
	}
	return "unmatched"
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return false
		}
	}
	return true
}
