package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/cluster"
)

// exitLeaseLost is the exit status of a process that lost the alarm lease
// after holding it: its engine and desk may be behind the new owner's, so
// it stops at once and its supervisor starts it again as a follower.
const exitLeaseLost = 3

// addLeasedAlarms wires alarms.owner: lease (docs/cloud.md, "Who owns
// alarms and work orders"). Every process with the ingest hands what it
// commits to the owner through the broker. A process with the ingest and
// the API is a candidate: it builds the engine, the desk, the resident
// requests and the webhooks,
// and starts them only when it takes the lease. Every process with the API
// serves the alarm, work-order and resident-request routes: itself while it
// owns them, forwarded to the owner otherwise.
func addLeasedAlarms(a *app.App, srv *api.Server, log *slog.Logger) error {
	mq, err := a.ExternalBroker()
	if err != nil {
		return fmt.Errorf("cannot set up the alarm lease: %w", err)
	}
	cfg := a.Config.Alarms
	llog := log.With("component", "lease")
	lc := cluster.Config{URL: mq.URL, Username: mq.Username, Password: mq.Password, TLS: mq.TLS,
		ClientID: cfg.LeaseClientID, Advertise: cfg.Advertise, Logger: llog,
		OnLost: func(err error) {
			llog.Error("stopping: this process no longer owns alarms and work orders", "error", err)
			os.Exit(exitLeaseLost)
		}}
	var parts *alarmParts
	if a.Ingest != nil && srv != nil {
		if parts, err = newAlarmParts(a, log); err != nil {
			return err
		}
		lc.Candidate = true
		lc.OnAcquire = func(ctx context.Context) error {
			// Start order as in one process: notifier, desk, residents, engine.
			if err := parts.notifier.Start(ctx); err != nil {
				return err
			}
			if err := parts.desk.Start(ctx); err != nil {
				return err
			}
			if err := parts.residents.Start(ctx); err != nil {
				return err
			}
			return parts.engine.Start(ctx)
		}
		org := &a.Bundle.Org
		lc.BeforeRelease = func() {
			parts.engine.Stop()
			parts.residents.Stop()
			parts.desk.Stop()
			parts.notifier.Stop()
		}
		lc.OnObserved = func(ctx context.Context, o cluster.Observation) {
			if err := cluster.Deliver(ctx, org, parts.engine, o); err != nil {
				llog.Warn("dropped an observation", "error", err)
			}
		}
	}
	lease, err := cluster.New(lc)
	if err != nil {
		return err
	}
	a.Add("lease", lease)
	if a.Ingest != nil {
		a.AddObserver(lease.Publisher())
	}
	if srv != nil {
		// Without parts here, the owner serves them: the handlers never run.
		routes := parts.routes()
		srv.Register(routes...)
		paths := make([]string, len(routes))
		for i, r := range routes {
			paths[i] = r.Path
		}
		srv.Forward(paths, lease.Owner)
		// The console (when enabled) signs users in on the owner and keeps
		// their sessions there: its pages are the owner's too.
		srv.ForwardMounted(lease.Owner)
	}
	return nil
}
