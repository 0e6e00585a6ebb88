package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
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

// withRequestID takes a well-formed X-Request-Id from the client (up to 64
// characters of [A-Za-z0-9._-]) or makes one, and echoes it in the response.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(keyRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
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
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(route, req.Method, strconv.Itoa(res.Status)).Inc()
		s.metrics.duration.WithLabelValues(route, req.Method).Observe(d.Seconds())
		level := slog.LevelInfo
		if route == pathHealth || route == pathReady || route == pathMetrics {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)), slog.String("method", req.Method),
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

// limitBody refuses bodies over limit bytes: 413 when the declared length
// says so, and a read error past the limit otherwise.
func limitBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
					Message: "request body of " + strconv.FormatInt(req.ContentLength, 10) + " bytes exceeds the limit of " + strconv.FormatInt(limit, 10)}
			}
			if req.Body != nil {
				req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
			}
			return next(c)
		}
	}
}

// withDeadline bounds a request's work by timeout; a streaming route
// instead lifts the server's write deadline and keeps the client's context.
func withDeadline(timeout time.Duration, stream bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if stream {
				_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Time{})
				return next(c)
			}
			ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}
