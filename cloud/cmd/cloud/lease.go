package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/plantroom/plantroom/cloud/api"
	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/cluster"
	"github.com/plantroom/plantroom/protocol"
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
//
// Remote control follows the same owner: a candidate also builds the
// command desk, which the owner starts with the engine (it needs the
// engine's active alarms and restores the commands without an outcome from
// the log). Any replica's API takes a command and forwards it to the owner,
// which records it and publishes it once on its own ingest connection; the
// gateway's result reaches whichever ingest the broker picks, which hands
// it to the owner as an observation like any event, so it is applied
// once; reads of commands are forwarded to the owner too.
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
		if parts.commands, err = newCommandDesk(a, parts.engine, log); err != nil {
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
			if err := parts.engine.Start(ctx); err != nil {
				return err
			}
			return parts.commands.Start(ctx)
		}
		org := &a.Bundle.Org
		lc.BeforeRelease = func() {
			parts.commands.Stop()
			parts.engine.Stop()
			parts.residents.Stop()
			parts.desk.Stop()
			parts.notifier.Stop()
		}
		lc.OnObserved = func(ctx context.Context, o cluster.Observation) {
			if err := cluster.Deliver(ctx, org, parts.engine, o); err != nil {
				llog.Warn("dropped an observation", "error", err)
				return
			}
			if o.Kind == cluster.KindEvent && o.Event.Kind == protocol.EventCommand {
				// A command's result: the desk applies it (no I/O here).
				_ = cluster.Deliver(ctx, org, parts.commands, o)
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
		routes := parts.allRoutes()
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
