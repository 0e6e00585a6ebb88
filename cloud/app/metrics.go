package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves GET /metrics.
type metricsServer struct {
	listen string
	reg    *prometheus.Registry
	log    *slog.Logger
	srv    *http.Server
	addr   string
	done   chan struct{}
	once   sync.Once
}

func newMetricsServer(listen string, reg *prometheus.Registry, log *slog.Logger) *metricsServer {
	return &metricsServer{listen: listen, reg: reg, log: log, done: make(chan struct{})}
}

func (m *metricsServer) Start(ctx context.Context) error {
	l, err := net.Listen("tcp", m.listen)
	if err != nil {
		return fmt.Errorf("cannot listen for metrics on %q: %w", m.listen, err)
	}
	m.addr = l.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics endpoint failed", "error", err)
		}
	}()
	m.log.Info("metrics endpoint listening", "addr", m.addr)
	return nil
}

func (m *metricsServer) Stop() {
	m.once.Do(func() {
		if m.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.srv.Shutdown(ctx)
		<-m.done
	})
}
